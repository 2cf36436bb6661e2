import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { checkNationalId, normalizeMobile, redactPersonalData } from '../../../libs/identity';
import { IsoFields, IsoFormatError, packMessage, parseTlv, buildTlv, peekMessageHead, retailMac, TlvError, unpackMessage, maskForLog } from '../../../libs/iso8583';
import { ActivateAccount, ActivationRecord } from '../../activation/activate-account.use-case';
import { AdviseReversal } from '../../activation/advise-reversal.use-case';
import { BankDirectory, BankProfile } from '../../banks/bank-directory';
import { RateLimiter } from '../../banks/rate-limiter';
import { GatewayError } from '../../common/gateway-error';
import { JsonLogger, withRequestContext } from '../../logging/json-logger';
import { ResponseCode, responseCodeOf } from './field39';
import { OpsRecorder } from '../../ops/ops-recorder';
import { ErrorCode } from '../../common/gateway-error';
import { RefusedTraffic } from '../../ops/refused-traffic';

export const ACTIVATION_PROCESSING_CODE = '910000';
const ECHOED_IN_0210 = [2, 3, 7, 11, 12, 13, 32, 37, 41];
const ECHOED_IN_0430 = [2, 3, 7, 11, 32, 37, 41, 90];
const REQUIRED_IN_0200 = [2, 3, 7, 11, 12, 13, 32, 37, 41, 48];

/** What to do with one frame: answer it, or close the connection (nothing readable to answer). */
export type ExchangeResult = { reply: Buffer } | { close: string };

/** What the exchange tells the connection a frame came on: the listener keeps connections that prove a key, and closes those that keep failing. */
export interface ConnectionTrust {
  /** A message's MAC verified. */
  verified(): void;
  /** A message's MAC was wrong or missing. */
  macFailed(): void;
}

/** Message types that carry a MAC (spec 4.3): proven before they are routed, or answered without being routed. */
const MAC_CARRYING = new Set(['0200', '0420', '0421']);

/** One unpacked message as its handler sees it, beside its fields. */
export interface AtmMessage {
  /** performance.now() when the frame was read: latencies count from here. */
  receivedAt: number;
  /** The bank whose key verified the message's MAC; null for a message type that carries none (0800). */
  bank: BankProfile | null;
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
    private readonly panHashKey: string,
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
    const requestId = [7, 11, 32, 37, 41].every((field) => request[field] !== undefined) ? atmRequestId(request) : null;
    return withRequestContext({ requestId, connection }, () => this.answer(request, raw, receivedAt, trust, route));
  }

  private async answer(request: IsoFields, raw: Buffer, receivedAt: number, trust: ConnectionTrust, route: AtmRoute): Promise<ExchangeResult> {
    const tracing = this.log.enabled('debug'); // decoding and masking for the log only when it is written
    if (tracing) this.log.emit('debug', 'iso request', { iso: maskForLog(request) });
    let verified = false;
    try {
      // Proven here, before routing and before anything is awaited: the connection learns of a MAC failure
      // before its next frame is taken up, so its failure rule closes it after exactly the allowed number.
      const proof = this.prove(request, raw, receivedAt, trust);
      if ('refused' in proof) return { reply: proof.refused };
      verified = proof.bank !== null;
      const reply = await route(request, { receivedAt, bank: proof.bank });
      if (tracing) this.log.emit('debug', 'iso response', { iso: maskForLog(unpackMessage(reply)) });
      return { reply };
    } catch (error) {
      this.log.emit('error', 'unexpected error answering an ISO 8583 message', { mti: request[0], stan: request[11], error });
      try {
        // MAC'd only when the request's own MAC verified: an error before that proves nothing either.
        const bank = verified ? this.directory.forAcquirer(request[32]) ?? null : null;
        return { reply: this.codeAnswer(request, '96', bank) };
      } catch {
        return { close: 'no answer could be built' };
      }
    }
  }

  /**
   * An answer carrying only a field 39 code, in the response MTI of the request: MAC'd with `bank`'s key
   * when the request's own MAC verified, with none when it proved nothing (spec 4.3).
   */
  private codeAnswer(request: IsoFields, code: ResponseCode, bank: BankProfile | null): Buffer {
    if (request[0] === '0200') return this.answer0210(request, code, bank);
    if (request[0] === '0420' || request[0] === '0421') return this.answer0430(request, code, bank);
    return this.plainAnswer(request, code);
  }

  private answer0430(request: IsoFields, code: ResponseCode, bank: BankProfile | null): Buffer {
    const fields = pick(request, ECHOED_IN_0430, { 0: '0430', 39: code });
    return bank ? this.sign(bank, fields) : packMessage(fields);
  }

  /**
   * Spec 4.3 for the message types that carry a MAC: the bank named in field 32, and its MAC verified, or
   * the answer to a message that proved nothing (never MAC'd). Other types carry no MAC and prove nothing.
   */
  private prove(request: IsoFields, raw: Buffer, receivedAt: number, trust: ConnectionTrust): { bank: BankProfile | null } | { refused: Buffer } {
    if (!MAC_CARRYING.has(request[0])) return { bank: null };
    const activation = request[0] === '0200';
    const bank = request[32] ? this.directory.forAcquirer(request[32]) : undefined;
    if (!bank) {
      if (!activation) {
        // Spec 4.4: a reversal advice is always answered 00; nothing to reverse here.
        this.refuse(request, null, '00', 'reversal advice from an unknown acquirer');
        return { refused: this.answer0430(request, '00', null) };
      }
      this.refuse(request, null, '58', 'unknown acquirer');
      return { refused: this.failed(request, null, '58', 'UNKNOWN_BANK', receivedAt) };
    }
    const macProblem = this.checkMac(bank, request, raw);
    if (macProblem) {
      trust.macFailed();
      this.refuse(request, bank, '63', macProblem);
      if (activation) this.recordError(request, bank, 'SIGNATURE_INVALID', receivedAt);
      return { refused: this.unprovenAnswer(request, '63') };
    }
    trust.verified();
    return { bank };
  }

  /** A message type no handler takes: not one that carries a MAC, so nothing is proven; a plain 12. */
  unsupported(request: IsoFields): Buffer {
    return this.plainAnswer(request, '12');
  }

  /**
   * Not rate-limited: sign-on and echo keep the link up and decide nothing, and a refused echo would make
   * the switch take the link down or fail over. They carry no MAC, so charging them to the bank named in
   * field 32 would let anyone who can reach the port spend that bank's budget.
   */
  networkManagement(request: IsoFields): Buffer {
    const code = ['001', '002', '301'].includes(request[70]) ? '00' : '12';
    return packMessage(pick(request, [7, 11, 32, 70], { 0: '0810', 39: code }));
  }

  /** A 0200 whose MAC verified. */
  async activation(request: IsoFields, message: AtmMessage): Promise<Buffer> {
    const { receivedAt } = message;
    const bank = provenBank(message);
    // After the MAC, as HTTP limits after the signature: forged frames must not spend the bank's budget.
    // Refused before anything is decided or stored (no row, no atm_refused_message: a write per refusal
    // is the load the limit exists to shed); only the ops stream sees it. 91 tells the switch to try later.
    if (!(await this.rateLimiter.tryTake(bank.code, bank.rateLimitPerSecond))) return this.failed(request, bank, '91', 'RATE_LIMITED', receivedAt);
    if (request[3] !== ACTIVATION_PROCESSING_CODE) return this.failed(request, bank, '12', 'MALFORMED_REQUEST', receivedAt);
    const missing = REQUIRED_IN_0200.filter((field) => request[field] === undefined);
    if (missing.length) return this.failed(request, bank, '30', 'MALFORMED_REQUEST', receivedAt);
    let nationalId: string;
    let mobile: string;
    try {
      const tlv = parseTlv(request[48]);
      const id = checkNationalId(tlv.get('NI'));
      const phone = normalizeMobile(tlv.get('MN'));
      if (!id.valid) return this.failed(request, bank, '30', 'INVALID_NATIONAL_ID', receivedAt);
      if (!phone.valid) return this.failed(request, bank, '30', 'INVALID_MOBILE', receivedAt);
      nationalId = id.nationalId;
      mobile = phone.e164;
    } catch (error) {
      if (error instanceof TlvError) return this.failed(request, bank, '30', 'MALFORMED_REQUEST', receivedAt);
      throw error;
    }
    const requestId = atmRequestId(request);
    let result;
    try {
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
        atm: {
          acquirerId: request[32],
          terminalId: request[41],
          stan: request[11],
          rrn: request[37],
          transmittedAt: request[7],
          panHash: createHmac('sha256', this.panHashKey).update(request[2]).digest('hex'),
        },
        // Stored without the PAN (never stored in clear) and without the MAC; both are added when sent.
        renderResponse: (record) => ({ status: 0, body: JSON.stringify(this.fields0210(request, record)) }),
      });
    } catch (error) {
      if (error instanceof GatewayError && error.code === 'UNAVAILABLE') return this.failed(request, bank, '91', 'UNAVAILABLE', receivedAt);
      this.recordError(request, bank, 'INTERNAL_ERROR', receivedAt);
      throw error;
    }
    // Decided or replayed: already on the ops stream; the PAN (never stored) and the MAC are added now.
    const stored: IsoFields = JSON.parse(result.response.body);
    return this.sign(bank, { ...stored, 2: request[2] });
  }

  /** A 0200 answered without a decision: the answer, and its request-handled event on the ops stream. */
  private failed(request: IsoFields, bank: BankProfile | null, code: ResponseCode, errorCode: ErrorCode, receivedAt: number): Buffer {
    this.recordError(request, bank, errorCode, receivedAt);
    return this.answer0210(request, code, bank);
  }

  private recordError(request: IsoFields, bank: BankProfile | null, errorCode: ErrorCode, receivedAt: number): void {
    const keyed = [7, 11, 32, 37, 41].every((field) => request[field] !== undefined);
    this.ops.record({
      bankCode: bank?.code ?? 'UNKNOWN',
      channel: 'ATM',
      requestId: keyed ? atmRequestId(request) : null,
      activationId: null,
      outcome: 'ERROR',
      reason: null,
      errorCode,
      latencyMs: Math.round((performance.now() - receivedAt) * 100) / 100,
      subjectHash: null,
      replayed: false,
    });
  }

  private fields0210(request: IsoFields, record: ActivationRecord): IsoFields {
    const code = responseCodeOf(record.reason);
    const fields = pick(request, ECHOED_IN_0210.filter((f) => f !== 2), { 0: '0210', 39: code });
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
    const answer = (code: ResponseCode) => this.answer0430(request, code, bank);
    const original = request[90];
    if (!original || !request[37] || !request[41]) return answer('30');
    // Field 90: original MTI (4), STAN (6), transmission date and time (10), acquirer (11, zero-padded), forwarding institution (11).
    const originalAcquirer = original.slice(20, 31);
    const originalRequestId = atmRequestId({ 7: original.slice(10, 20), 11: original.slice(4, 10), 32: /[1-9]/.test(originalAcquirer) ? originalAcquirer : request[32], 37: request[37], 41: request[41] });
    try {
      const result = await this.adviseReversal.execute(bank.code, originalRequestId);
      this.log.emit('info', 'reversal advice', { bank: bank.code, stan: request[11], result });
      return answer('00');
    } catch (error) {
      if (error instanceof GatewayError && error.code === 'UNAVAILABLE') return answer('91');
      throw error;
    }
  }

  /** Null when the MAC is present and right; otherwise why not. */
  private checkMac(bank: BankProfile, request: IsoFields, raw: Buffer): string | null {
    const macField = raw[4] & 0x80 ? 128 : 64;
    const received = request[macField];
    if (received === undefined) return `MAC (field ${macField}) missing`;
    if (!bank.macKey) return `no MAC key is configured for ${bank.code}`;
    const expected = retailMac(bank.macKey, raw.subarray(0, raw.length - 8));
    return timingSafeEqual(expected, Buffer.from(received, 'hex')) ? null : 'MAC does not verify';
  }

  /** Packs with the MAC of spec 4.3: over every byte before the MAC field, with the MAC bit set. */
  private sign(bank: BankProfile, fields: IsoFields): Buffer {
    const macField = Object.keys(fields).some((k) => Number(k) > 64) ? 128 : 64;
    const unsigned = packMessage({ ...fields, [macField]: '0000000000000000' });
    if (!bank.macKey) return unsigned;
    const mac = retailMac(bank.macKey, unsigned.subarray(0, unsigned.length - 8));
    mac.copy(unsigned, unsigned.length - 8);
    return unsigned;
  }

  /**
   * The answer to a 0200/0420/0421 whose MAC did not verify: no MAC (spec 4.3). Its fields 7, 11, 37 and 41
   * are whatever the sender chose; MAC'd with the bank's key, it would be a decline anyone on the path
   * could have made to stand in for the answer to the switch's genuine request.
   */
  private unprovenAnswer(request: IsoFields, code: ResponseCode): Buffer {
    return this.codeAnswer(request, code, null);
  }

  /** `bank` null: no MAC (unknown acquirer, or a message that proved nothing). */
  private answer0210(request: IsoFields, code: ResponseCode, bank: BankProfile | null): Buffer {
    const fields = pick(request, ECHOED_IN_0210, { 0: '0210', 39: code });
    return bank ? this.sign(bank, fields) : packMessage(fields);
  }

  /** An answer to a request we cannot act on: the request's MTI turned into its response, 39 set, what can be echoed echoed. */
  private plainAnswer(request: IsoFields, code: ResponseCode): Buffer {
    const mti = responseMti(request[0]) ?? '0810';
    return packMessage(pick(request, [7, 11, 32, 37, 41], { 0: mti, 39: code }));
  }

  private unreadable(raw: Buffer, problem: string, connection: string): ExchangeResult {
    const head = peekMessageHead(raw);
    const mti = head ? responseMti(head.mti) : null;
    if (!head || !head.stan || !mti) {
      this.log.emit('warn', 'ISO 8583 frame cannot be read; closing the connection', { connection, problem, bytes: raw.length });
      return { close: problem };
    }
    const fields: IsoFields = { 0: mti, 11: head.stan, 39: '30' };
    if (head.acquirerId) fields[32] = head.acquirerId;
    if (head.rrn) fields[37] = head.rrn;
    const bank = head.acquirerId ? this.directory.forAcquirer(head.acquirerId) : undefined;
    this.refuse({ ...fields, 0: head.mti }, bank ?? null, '30', redactPersonalData(`cannot be unpacked: ${problem}`).slice(0, 200));
    if (head.mti === '0200') this.recordError({ 0: head.mti, 11: head.stan }, bank ?? null, 'MALFORMED_REQUEST', performance.now());
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
  private refuse(request: IsoFields, bank: BankProfile | null, code: ResponseCode, reason: string): void {
    this.refused.refuse({
      channel: 'ATM',
      source: request[32] ?? '-',
      bankCode: bank?.code ?? null,
      code,
      reason,
      sample: { mti: request[0], acquirerId: request[32] ?? null, stan: request[11] ?? null, rrn: request[37] ?? null, terminalId: request[41] ?? null },
    });
  }
}

/** 0200 -> 0210, 0420/0421 -> 0430, 0800 -> 0810; null for what is not a request. */
export function responseMti(mti: string): string | null {
  if (!/^[0-9]{4}$/.test(mti)) return null;
  if (mti === '0421') return '0430';
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

function pick(fields: IsoFields, numbers: number[], extra: IsoFields): IsoFields {
  const picked: IsoFields = { ...extra };
  for (const number of numbers) if (fields[number] !== undefined) picked[number] = fields[number];
  return picked;
}
