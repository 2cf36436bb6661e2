import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { createHash } from 'node:crypto';
import { Controller, Get, Inject, Param, Post, Req, Res } from '@nestjs/common';
import { FastifyReply, FastifyRequest } from 'fastify';
import { TlsClientIdentity, tlsClientIdentity } from '../../../libs/pki';
import { ActivateAccount, ActivationRecord } from '../../activation/activate-account.use-case';
import { ActivationQueries } from '../../activation/activation-queries';
import { BankAuthenticator } from '../../banks/bank-authenticator';
import { BankProfile } from '../../banks/bank-directory';
import { RateLimiter } from '../../banks/rate-limiter';
import { GatewayError } from '../../common/gateway-error';
import { JsonLogger } from '../../logging/json-logger';
import { KeyStore } from '../../keys/key-store';
import { parseActivationRequest } from './activation-request.body';
import { header, isWellFormedRequestId, REQUEST_ID_RULE, requestPath } from './request-context';
import { ATM_REQUEST_KEY_RULE, isAtmRequestKey } from '../../activation/request-keys';

const EMPTY = Buffer.alloc(0);

/** Signed JSON (spec 3): translates HTTP into the activation use case and its result back. */
@Controller('v1/activations')
export class ActivationsController {
  constructor(
    @Inject(BankAuthenticator) private readonly authenticator: BankAuthenticator,
    @Inject(RateLimiter) private readonly rateLimiter: RateLimiter,
    @Inject(ActivateAccount) private readonly activateAccount: ActivateAccount,
    @Inject(ActivationQueries) private readonly queries: ActivationQueries,
    @Inject(KeyStore) private readonly keys: KeyStore,
    @Inject(JsonLogger) logger: JsonLogger,
  ) {
    this.log = logger.child('http');
  }

  private readonly log: JsonLogger;

  @Post()
  async submit(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const receivedAt = performance.now();
    const body = Buffer.isBuffer(request.body) ? request.body : EMPTY;
    const bank = await this.authenticate(request, body);
    // The request id comes from the request's log context (bound by the HTTP channel).
    if (this.log.enabled('debug')) this.log.emit('debug', 'activation request authenticated', { bank: bank.code });
    const requestId = header(request, 'x-request-id');
    if (!isWellFormedRequestId(requestId)) throw new GatewayError('MALFORMED_REQUEST', `X-Request-Id must be ${REQUEST_ID_RULE}`);
    if (isAtmRequestKey(requestId)) throw new GatewayError('MALFORMED_REQUEST', `X-Request-Id must not take the form of an ATM request key: ${ATM_REQUEST_KEY_RULE}`);
    const contentType = header(request, 'content-type') ?? '';
    if (!/^application\/json\s*(;\s*charset=utf-8\s*)?$/i.test(contentType)) {
      throw new GatewayError('MALFORMED_REQUEST', 'Content-Type must be application/json');
    }
    const activation = parseActivationRequest(body);
    // Its answer could not be signed: nothing is decided that the bank could not be told.
    if (this.keys.problem) throw new GatewayError('UNAVAILABLE', 'the gateway cannot sign its answers now (its key store is unavailable); nothing was accepted, retry later');
    const result = await this.activateAccount.execute({
      bank,
      channel: activation.channel,
      requestId,
      nationalId: activation.nationalId,
      mobile: activation.mobile,
      customerReference: activation.customerReference,
      requestDigest: createHash('sha256').update(body).digest('hex'),
      receivedAt,
      origin: null,
      replayForm: (record) => ({ status: 200, body: JSON.stringify(decisionBody(record)) }),
    });
    if (result.replayed) reply.header('idempotent-replayed', 'true');
    reply.status(result.replayForm.status).header('content-type', 'application/json').send(result.replayForm.body);
  }

  @Get(':requestId')
  async status(@Param('requestId') requestId: string, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const bank = await this.authenticate(request, EMPTY);
    if (!isWellFormedRequestId(requestId)) throw new GatewayError('NOT_FOUND', `request ids are ${REQUEST_ID_RULE}`);
    const view = await this.queries.byRequestId(bank.code, requestId);
    reply.status(200).header('content-type', 'application/json').send(JSON.stringify(view));
  }

  private async authenticate(request: FastifyRequest, body: Buffer): Promise<BankProfile> {
    const bank = await this.authenticator.authenticate({
      method: request.method,
      path: requestPath(request),
      bankId: header(request, 'x-bank-id'),
      requestId: header(request, 'x-request-id'),
      signature: header(request, 'x-jws-signature'),
      body,
      tlsClient: tlsClientOf(request.raw.socket),
    });
    // After the signature, so forged requests cannot spend a bank's budget; the bucket is shared with
    // the ATM channel and with every instance (RateLimiter), since the limit is the bank's, not the channel's.
    if (!(await this.rateLimiter.tryTake(bank.code, bank.rateLimitPerSecond))) {
      throw new GatewayError('RATE_LIMITED', `${bank.code} is above its limit of ${bank.rateLimitPerSecond} requests per second; retry after 1 s`);
    }
    return bank;
  }
}

/** Spec 3.5: the 200 body. */
function decisionBody(record: ActivationRecord) {
  return {
    activationId: record.activationId,
    requestId: record.requestId,
    bankCode: record.bankCode,
    channel: record.channel,
    status: record.status,
    reason: record.reason,
    decidedAt: record.decidedAt.toISOString(),
  };
}

/** The client certificates mutual-TLS handshakes verified, by connection: worked out once, not per request. */
const tlsClients = new WeakMap<TLSSocket, TlsClientIdentity>();

/** The identity of the client certificate a mutual-TLS handshake verified on this connection; undefined on a plain listener. */
function tlsClientOf(socket: Socket): TlsClientIdentity | undefined {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  let identity = tlsClients.get(socket);
  if (!identity) {
    const raw = socket.getPeerCertificate().raw;
    if (!raw || raw.length === 0) return undefined;
    identity = tlsClientIdentity(raw);
    tlsClients.set(socket, identity);
  }
  return identity;
}
