import { createHash } from 'node:crypto';
import { checkNationalId, normalizeMobile, redactPersonalData } from '../../../libs/identity';
import {
  buildTlv,
  echo,
  echoedFields,
  IsoFields,
  IsoFormatError,
  macFieldOf,
  maskForLog,
  MESSAGE_TABLE,
  messageDefinition,
  missingFields,
  packMessage,
  packSigned,
  peekFields,
  pickFields,
  processingCodeOf,
  readActivationRequest,
  readNetworkManagement,
  readReversalAdvice,
  requestCarriesMac,
  unpackMessage,
  verifyMac,
} from '../../../libs/iso8583';
import { ActivateAccount, ActivationRecord } from '../../activation/activate-account.use-case';
import { AdviseReversal } from '../../activation/advise-reversal.use-case';
import { TlsClientIdentity, tlsClientAllowed } from '../../../libs/pki';
import { BankDirectory, BankProfile } from '../../banks/bank-directory';
import { RateLimiter } from '../../banks/rate-limiter';
import { GatewayError } from '../../common/gateway-error';
import { isKeyStoreUnavailable, KeyStore } from '../../keys/key-store';
import { JsonLogger, withRequestContext } from '../../logging/json-logger';
import { AtmErrorCode, reportedErrorCode, responseCodeOf } from './field39';
import { OpsRecorder } from '../../ops/ops-recorder';
import { errorHandled } from '../../ops/request-handled';
import { RefusedTraffic } from '../../ops/refused-traffic';

export const ACTIVATION_PROCESSING_CODE = processingCodeOf('0200');

/** Spec 4.4: the fields of an ATM request's idempotency key, with the acquirer (see atmRequestId). */
const REQUEST_KEY_FIELDS = [7, 11, 32, 37, 41];

/** What to do with one frame: answer it, or close the connection (nothing readable to answer). */
export type ExchangeResult = { reply: Buffer } | { close: string };

/** What the exchange tells the connection a frame came on: the listener keeps connections that prove a key, and closes those that keep failing. */
export interface ConnectionTrust {
  /** A message's MAC verified. */
  verified(): void;
  /** A message's MAC was wrong or missing. */
  macFailed(): void;
  /** Under mutual TLS, the client certificate the connection's handshake verified: only its bank may be named in field 32. */
  readonly tlsClient?: TlsClientIdentity;
}

/** One unpacked message as its handler sees it, beside its fields. */
export interface AtmMessage {
  /** performance.now() when the frame was read: latencies count from here. */
  receivedAt: number;
  /** The bank whose key verified the message's MAC; null for a message type that carries none (0800). */
  bank: BankProfile | null;
  /** Its idempotency key (spec 4.4), worked out once when it was unpacked; null when a key field is missing. */
  requestId: string | null;
}

/** Hands an unpacked message to the handler of its MTI (the transport's routing) and gives back the answer. */
export type AtmRoute = (request: IsoFields, message: AtmMessage) => Promise<Buffer>;

/**
 * The ATM channel's translation (spec 4): an ISO 8583 message in, the one
 * activation use case (or the reversal one) in the middle, an ISO 8583
 * answer out. Knows messages, not connections.
 */
export class AtmExchange {
  private readonly log: JsonLogger;

  constructor(
    private readonly directory: BankDirectory,
    private readonly activateAccount: ActivateAccount,
    private readonly adviseReversal: AdviseReversal,
    private readonly refused: RefusedTraffic,
    /** The bank MAC keys are in the directory; the PAN hash key is here, in memory or in the token. */
    private readonly keys: KeyStore,
    private readonly ops: OpsRecorder,
    /** The same instance the HTTP channel uses: a bank's limit is one budget, whichever channel it spends it on. */
    private readonly rateLimiter: RateLimiter,
    logger: JsonLogger,
  ) {
    this.log = logger.child('atm');
  }

  /** Unpacks a frame, routes it, and answers it: a 30 when it cannot be unpacked, a 96 when its handler fails. */
  async handle(raw: Buffer, connection: string, trust: ConnectionTrust, route: AtmRoute): Promise<ExchangeResult> {
    const receivedAt = performance.now();
    let request: IsoFields;
    try {
      request = unpackMessage(raw);
    } catch (error) {
      return this.unreadable(raw, (error as IsoFormatError).message, connection);
    }
    // The same request id as the stored row and the events carry, so one ATM request can be followed across logs, store and Kafka:
    // bound to every line written while it is handled.
    const requestId = missingFields(request, REQUEST_KEY_FIELDS).length === 0 ? atmRequestId(request) : null;
    return withRequestContext({ requestId, connection }, () => this.answer(request, raw, receivedAt, requestId, trust, route));
  }

  private async answer(request: IsoFields, raw: Buffer, receivedAt: number, requestId: string | null, trust: ConnectionTrust, route: AtmRoute): Promise<ExchangeResult> {
    const tracing = this.log.enabled('debug'); // decoding and masking for the log only when it is written
    if (tracing) this.log.emit('debug', 'iso request', { iso: maskForLog(request) });
    let verified = false;
    try {
      // Proven here, before routing and before anything is awaited: the connection learns of a MAC failure
      // before its next frame is taken up, so its failure rule closes it after exactly the allowed number.
      const proof = this.prove(request, raw, receivedAt, trust);
      if ('refused' in proof) return { reply: proof.refused };
      verified = proof.bank !== null;
      const reply = await route(request, { receivedAt, bank: proof.bank, requestId });
      if (tracing) this.log.emit('debug', 'iso response', { iso: maskForLog(unpackMessage(reply)) });
      return { reply };
    } catch (error) {
      this.log.emit('error', 'unexpected error answering an ISO 8583 message', { mti: request[0], stan: request[11], error });
      try {
        // MAC'd only when the request's own MAC verified: an error before that proves nothing either.
        const bank = verified ? this.directory.forAcquirer(request[32]) ?? null : null;
        return { reply: this.codeAnswer(request, 'INTERNAL_ERROR', bank) };
      } catch {
        return { close: 'no answer could be built' };
      }
    }
  }

  /**
   * An answer carrying only a field 39 code (`cause` null: 00), in the response MTI of the request, echoing
   * what its definition says: MAC'd with `bank`'s key when the request's own MAC verified, with none when it
   * proved nothing (spec 4.3). `bank` null: no MAC (unknown acquirer, or a message that proved nothing).
   */
  private codeAnswer(request: IsoFields, cause: AtmErrorCode | null, bank: BankProfile | null): Buffer {
    const answerMti = messageDefinition(request[0])?.answer;
    if (!answerMti || !requestCarriesMac(request[0])) return this.plainAnswer(request, cause);
    const fields = echo(request, answerMti, { 39: responseCodeOf(cause) });
    return bank ? this.macd(fields, request, bank) : packMessage(fields);
  }

  /**
   * Packed and MAC'd under the bank's current key. When the key store cannot MAC (its token is gone), a 91
   * without a MAC instead: the one answer that can be given without the key. A decision already stored is
   * not lost: the switch's repeat of the request is answered with it once the token is back (spec 4.4).
   */
  private macd(fields: IsoFields, request: IsoFields, bank: BankProfile): Buffer {
    try {
      return packSigned(fields, bank.macKey);
    } catch (error) {
      if (!isKeyStoreUnavailable(error)) throw error;
      this.log.emit('error', 'an ISO 8583 answer could not be MAC\'d: the key store is unavailable; answered 91 without a MAC', { bank: bank.code, error: (error as Error).message });
      return packMessage(echo(request, fields[0], { 39: responseCodeOf('UNAVAILABLE') }));
    }
  }

  /**
   * Spec 4.3 for the message types that carry a MAC: the bank named in field 32, and its MAC verified, or
   * the answer to a message that proved nothing (never MAC'd). Other types carry no MAC and prove nothing.
   */
  private prove(request: IsoFields, raw: Buffer, receivedAt: number, trust: ConnectionTrust): { bank: BankProfile | null } | { refused: Buffer } {
    if (!requestCarriesMac(request[0])) return { bank: null };
    const activation = request[0] === '0200';
    const bank = request[32] ? this.directory.forAcquirer(request[32]) : undefined;
    if (!bank) {
      if (!activation) {
        // Spec 4.4: a reversal advice is always answered 00; nothing to reverse here.
        this.refuse(request, null, null, 'reversal advice from an unknown acquirer');
        return { refused: this.codeAnswer(request, null, null) };
      }
      this.refuse(request, null, 'UNKNOWN_BANK', 'unknown acquirer');
      return { refused: this.failed(request, null, 'UNKNOWN_BANK', receivedAt) };
    }
    // Before the MAC: a connection of one bank never speaks for another, whatever key it holds.
    if (trust.tlsClient && !tlsClientAllowed(trust.tlsClient, bank.tlsClients)) {
      this.refuse(request, bank, 'UNKNOWN_BANK', `the TLS client certificate is not one registered for ${bank.code}`);
      if (!activation) return { refused: this.codeAnswer(request, null, null) };
      return { refused: this.failed(request, null, 'UNKNOWN_BANK', receivedAt) };
    }
    let macProblem: string | null;
    try {
      macProblem = this.checkMac(bank, request, raw);
    } catch (error) {
      if (!isKeyStoreUnavailable(error)) throw error;
      // Nothing proven, nothing decided: a 91 without a MAC, and the switch tries again (or another instance).
      this.log.emit('error', 'an ISO 8583 MAC could not be checked: the key store is unavailable; answered 91', { bank: bank.code, error: (error as Error).message });
      if (activation) this.recordError(request, bank, 'UNAVAILABLE', receivedAt);
      return { refused: this.codeAnswer(request, 'UNAVAILABLE', null) };
    }
    if (macProblem) {
      trust.macFailed();
      this.refuse(request, bank, 'SIGNATURE_INVALID', macProblem);
      if (activation) this.recordError(request, bank, 'SIGNATURE_INVALID', receivedAt);
      return { refused: this.unprovenAnswer(request, 'SIGNATURE_INVALID') };
    }
    trust.verified();
    return { bank };
  }

  /** A message type no handler takes: not one that carries a MAC, so nothing is proven; a plain 12. */
  unsupported(request: IsoFields): Buffer {
    return this.plainAnswer(request, 'UNSUPPORTED_MESSAGE');
  }

  /**
   * Not rate-limited: sign-on and echo keep the link up and decide nothing, and a refused echo would make
   * the switch take the link down or fail over. They carry no MAC, so charging them to the bank named in
   * field 32 would let anyone who can reach the port spend that bank's budget.
   */
  networkManagement(request: IsoFields): Buffer {
    const { purpose } = readNetworkManagement(request);
    return packMessage(echo(request, '0810', { 39: responseCodeOf(purpose ? null : 'UNSUPPORTED_MESSAGE') }));
  }

  /** A 0200 whose MAC verified. */
  async activation(request: IsoFields, message: AtmMessage): Promise<Buffer> {
    const { receivedAt } = message;
    const bank = provenBank(message);
    // After the MAC, as HTTP limits after the signature: forged frames must not spend the bank's budget.
    // Refused before anything is decided or stored (no row, no atm_refused_message: a write per refusal
    // is the load the limit exists to shed); only the ops stream sees it. 91 tells the switch to try later.
    if (!(await this.rateLimiter.tryTake(bank.code, bank.rateLimitPerSecond))) return this.failed(request, bank, 'RATE_LIMITED', receivedAt);
    // Field 3 first, missing or not: spec 4.2 answers any other processing code 12, before the other fields are looked at.
    if (request[3] !== ACTIVATION_PROCESSING_CODE) return this.failed(request, bank, 'UNSUPPORTED_MESSAGE', receivedAt);
    const decoded = readActivationRequest(request);
    if (!decoded.ok) return this.failed(request, bank, 'MALFORMED_REQUEST', receivedAt);
    const activation = decoded.message;
    const id = checkNationalId(activation.nationalId);
    const phone = normalizeMobile(activation.mobile);
    if (!id.valid) return this.failed(request, bank, 'INVALID_NATIONAL_ID', receivedAt);
    if (!phone.valid) return this.failed(request, bank, 'INVALID_MOBILE', receivedAt);
    const nationalId = id.nationalId;
    const mobile = phone.e164;
    // The required fields, the key's among them, are present here.
    const requestId = message.requestId ?? atmRequestId(request);
    let result;
    try {
      const panHash = this.keys.panHash(activation.pan);
      result = await this.activateAccount.execute({
        bank,
        channel: 'ATM',
        requestId,
        nationalId,
        mobile,
        customerReference: null,
        // Spec 4.4: a repeat is the same 7, 11, 37, 41 from the same acquirer, whatever else it carries.
        requestDigest: createHash('sha256').update(requestId).digest('hex'),
        receivedAt,
        origin: {
          pointOfService: {
            acquirerId: activation.acquirerId,
            terminalId: activation.terminalId,
            stan: activation.stan,
            rrn: activation.rrn,
            transmittedAt: activation.transmittedAt,
            panHash,
          },
          // Spec 5.1: the identity core sees where an ATM activation was made.
          published: { terminalId: activation.terminalId, stan: activation.stan, rrn: activation.rrn },
          // Spec 4.4: the switch may advise that the ATM never delivered the 0210.
          reversible: true,
        },
        // Stored without the PAN (never stored in clear) and without the MAC; both are added when sent.
        replayForm: (record) => ({ status: 0, body: JSON.stringify(this.fields0210(request, record)) }),
      });
    } catch (error) {
      if ((error instanceof GatewayError && error.code === 'UNAVAILABLE') || isKeyStoreUnavailable(error)) return this.failed(request, bank, 'UNAVAILABLE', receivedAt);
      this.recordError(request, bank, 'INTERNAL_ERROR', receivedAt);
      throw error;
    }
    // Decided or replayed: already on the ops stream; the PAN (never stored) and the MAC are added now.
    const stored: IsoFields = JSON.parse(result.replayForm.body);
    return this.macd({ ...stored, 2: activation.pan }, request, bank);
  }

  /** A 0200 answered without a decision: the answer, and its request-handled event on the ops stream. */
  private failed(request: IsoFields, bank: BankProfile | null, errorCode: AtmErrorCode, receivedAt: number): Buffer {
    this.recordError(request, bank, errorCode, receivedAt);
    return this.codeAnswer(request, errorCode, bank);
  }

  private recordError(request: IsoFields, bank: BankProfile | null, errorCode: AtmErrorCode, receivedAt: number): void {
    const keyed = missingFields(request, REQUEST_KEY_FIELDS).length === 0;
    this.ops.record(
      errorHandled({
        bankCode: bank?.code ?? 'UNKNOWN',
        channel: 'ATM',
        requestId: keyed ? atmRequestId(request) : null,
        errorCode: reportedErrorCode(errorCode),
        elapsedMs: performance.now() - receivedAt,
      }),
    );
  }

  private fields0210(request: IsoFields, record: ActivationRecord): IsoFields {
    // Stored for replays without the PAN (never stored in clear); it is added again when sent.
    const fields = pickFields(request, echoedFields('0210').filter((f) => f !== 2), { 0: '0210', 39: responseCodeOf(record.reason) });
    if (record.status === 'ACCEPTED') {
      fields[38] = record.activationId.replace(/-/g, '').slice(0, 6).toUpperCase();
      fields[48] = buildTlv([['AI', record.activationId]]);
    }
    return fields;
  }

  /**
   * Not rate-limited, nor charged to the bank's budget: a reversal is the switch undoing an activation
   * the ATM never delivered, and every moment it is refused that activation stands for a customer who
   * was told it failed.
   * The switch repeats an advice until it is answered (0421), so a 91 here would only add traffic, and
   * charging advices would let a switch's clean-up crowd out the bank's next activations.
   */
  async reversal(request: IsoFields, message: AtmMessage): Promise<Buffer> {
    const bank = provenBank(message);
    const answer = (cause: AtmErrorCode | null) => this.codeAnswer(request, cause, bank);
    const decoded = readReversalAdvice(request);
    if (!decoded.ok) return answer('MALFORMED_REQUEST');
    const advice = decoded.message;
    const { original } = advice;
    // The original 0200 had the advice's RRN and terminal (spec 4.4); an all-zero acquirer in field 90 is the advice's own.
    const originalRequestId = atmRequestId({ 7: original.transmittedAt, 11: original.stan, 32: original.acquirerId ?? request[32], 37: advice.rrn, 41: advice.terminalId });
    try {
      const result = await this.adviseReversal.execute(bank.code, originalRequestId);
      this.log.emit('info', 'reversal advice', { bank: bank.code, stan: advice.stan, result });
      return answer(null);
    } catch (error) {
      if (error instanceof GatewayError && error.code === 'UNAVAILABLE') return answer('UNAVAILABLE');
      throw error;
    }
  }

  /** Null when the MAC is present and right, under the bank's current key or, during a rotation, its next one; otherwise why not. */
  private checkMac(bank: BankProfile, request: IsoFields, raw: Buffer): string | null {
    const verdict = verifyMac(raw, request, bank.macKey);
    switch (verdict === 'invalid' && bank.macKeyNext ? verifyMac(raw, request, bank.macKeyNext) : verdict) {
      case 'valid':
        return null;
      case 'missing':
        return `MAC (field ${macFieldOf(raw)}) missing`;
      case 'no-key':
        return `no MAC key is configured for ${bank.code}`;
      case 'invalid':
        return 'MAC does not verify';
    }
  }

  /**
   * The answer to a 0200/0420/0421 whose MAC did not verify: no MAC (spec 4.3). Its fields 7, 11, 37 and 41
   * are whatever the sender chose; MAC'd with the bank's key, it would be a decline anyone on the path
   * could have made to stand in for the answer to the switch's genuine request.
   */
  private unprovenAnswer(request: IsoFields, cause: AtmErrorCode): Buffer {
    return this.codeAnswer(request, cause, null);
  }

  /** An answer to a request we cannot act on: the request's MTI turned into its response, 39 set, what can be echoed echoed. */
  private plainAnswer(request: IsoFields, cause: AtmErrorCode | null): Buffer {
    const mti = responseMti(request[0]) ?? '0810';
    return packMessage(pickFields(request, MESSAGE_TABLE.otherRequests.echoes, { 0: mti, 39: responseCodeOf(cause) }));
  }

  private unreadable(raw: Buffer, problem: string, connection: string): ExchangeResult {
    const { required, echoes } = MESSAGE_TABLE.unreadable;
    const head = peekFields(raw, echoes);
    const mti = head ? responseMti(head.mti) : null;
    if (!head || !mti || missingFields(head.fields, required).length > 0) {
      this.log.emit('warn', 'ISO 8583 frame cannot be read; closing the connection', { connection, problem, bytes: raw.length });
      return { close: problem };
    }
    const fields: IsoFields = { ...head.fields, 0: mti, 39: responseCodeOf('MALFORMED_REQUEST') };
    const acquirerId = head.fields[32];
    const bank = acquirerId ? this.directory.forAcquirer(acquirerId) : undefined;
    this.refuse({ ...fields, 0: head.mti }, bank ?? null, 'MALFORMED_REQUEST', redactPersonalData(`cannot be unpacked: ${problem}`).slice(0, 200));
    // Only an activation request has a request-handled event; without its key fields it has no request id.
    if (head.mti === '0200') this.recordError({ 0: head.mti, 11: head.fields[11] }, bank ?? null, 'MALFORMED_REQUEST', performance.now());
    try {
      // Never MAC'd: a message that cannot be unpacked cannot have its MAC checked, so it proved nothing (spec 4.3).
      return { reply: packMessage(fields) };
    } catch {
      return { close: `${problem}; no answer could be built` };
    }
  }

  /**
   * A message that proved nothing (spec 4.3: a MAC failure is recorded, never decided): counted and
   * maybe sampled by RefusedTraffic, in memory; no write and no log line of its own.
   */
  private refuse(request: IsoFields, bank: BankProfile | null, cause: AtmErrorCode | null, reason: string): void {
    this.refused.refuse({
      channel: 'ATM',
      source: request[32] ?? '-',
      bankCode: bank?.code ?? null,
      code: responseCodeOf(cause),
      reason,
      sample: { mti: request[0], acquirerId: request[32] ?? null, stan: request[11] ?? null, rrn: request[37] ?? null, terminalId: request[41] ?? null },
    });
  }
}

/**
 * 0200 -> 0210, 0420/0421 -> 0430, 0800 -> 0810 as contracts/iso8583/messages.json defines them; another
 * request MTI by the ISO 8583 rule (its function digit plus one, a repeat answered as the original); null
 * for what is not a request.
 */
export function responseMti(mti: string): string | null {
  if (!/^[0-9]{4}$/.test(mti)) return null;
  const defined = messageDefinition(mti)?.answer;
  if (defined) return defined;
  const third = Number(mti[2]);
  return third % 2 === 0 ? `${mti.slice(0, 2)}${third + 1}${mti[3] === '1' ? '0' : mti[3]}` : null;
}

/**
 * The idempotency key of an ATM request (spec 4.4): acquirer, 7, 11, 37, 41,
 * readable when it fits the request-id alphabet and 64 characters, else a hash.
 */
export function atmRequestId(fields: IsoFields): string {
  // Field 32 is numeric: 00123 and 123 are the same acquirer (field 90 carries it zero-padded).
  const acquirer = fields[32].replace(/^0+(?=[0-9])/, '');
  const readable = `${acquirer}:${fields[7]}:${fields[11]}:${fields[37]}:${fields[41]}`;
  if (/^[A-Za-z0-9._:-]{1,64}$/.test(readable)) return readable;
  return `atm:${createHash('sha256').update(JSON.stringify([acquirer, fields[7], fields[11], fields[37], fields[41]])).digest('hex').slice(0, 48)}`;
}

/** The bank of a message routed after its MAC verified; routing one that was not proven is a bug, answered 96. */
function provenBank(message: AtmMessage): BankProfile {
  if (!message.bank) throw new Error('a MAC-carrying message was routed without its MAC verified');
  return message.bank;
}
