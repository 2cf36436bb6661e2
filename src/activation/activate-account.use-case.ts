import { randomUUID } from 'node:crypto';
import { DataSource, QueryRunner } from 'typeorm';
import { BankProfile } from '../banks/bank-directory';
import { GatewayError, isStoreUnavailable } from '../common/gateway-error';
import { EVENT_TYPES, TOPICS } from '../kafka/topics';
import { OpsRecorder } from '../ops/ops-recorder';
import { RequestHandled, requestHandledEvent } from '../ops/request-handled';
import { SubjectHasher } from '../ops/subject-hasher';
import { cloudEvent } from '../outbox/cloud-event';
import { appendToOutbox } from '../outbox/outbox-writer';
import { ActivationStatus, Channel, Decision, DecisionReason, RegistrationStatus } from './activation.types';
import { decide } from './decision';
import { applyPendingReversal, reversalLockKey } from './advise-reversal.use-case';

export interface ActivationRecord {
  activationId: string;
  requestId: string;
  bankCode: string;
  channel: Channel;
  nationalId: string;
  mobile: string;
  status: ActivationStatus;
  reason: DecisionReason | null;
  decidedAt: Date;
}

/** The channel's answer, stored with the decision and replayed as is. */
export interface StoredResponse {
  status: number;
  body: string;
}

/** Where an ATM request came from (spec 4.2); never the PAN itself. */
export interface AtmOrigin {
  acquirerId: string;
  terminalId: string;
  stan: string;
  rrn: string;
  /** Field 7, MMDDhhmmss. */
  transmittedAt: string;
  /** Keyed hash of the PAN. */
  panHash: string;
}

/** One activation request, as every channel hands it over after translating its wire format. */
export interface ActivateAccountCommand {
  bank: BankProfile;
  channel: Channel;
  requestId: string;
  /** Already checked (10 digits, 1 or 2, Luhn). */
  nationalId: string;
  /** Already normalised to E.164. */
  mobile: string;
  customerReference: string | null;
  /** SHA-256 (hex) of the exact request bytes. */
  requestDigest: string;
  /** performance.now() when the request arrived, for the latency on the ops stream. */
  receivedAt: number;
  /** ATM requests only. */
  atm?: AtmOrigin;
  renderResponse(record: ActivationRecord): StoredResponse;
}

export type ActivationResult = { replayed: false; record: ActivationRecord; response: StoredResponse } | { replayed: true; response: StoredResponse };

/**
 * The one activation use case (spec section 2). The decision, the answer and
 * its events are committed in one transaction before the channel answers;
 * a repeated request id gets the stored answer, never a second decision.
 */
export class ActivateAccount {
  constructor(
    private readonly dataSource: DataSource,
    private readonly subjects: SubjectHasher,
    private readonly onCommitted: () => void,
    private readonly ops: OpsRecorder,
  ) {}

  async execute(command: ActivateAccountCommand): Promise<ActivationResult> {
    const runner: QueryRunner = this.dataSource.createQueryRunner();
    try {
      await runner.connect();
    } catch (error) {
      await runner.release().catch(() => undefined);
      throw new GatewayError('UNAVAILABLE', 'the activation store is unavailable; nothing was accepted, retry later', error);
    }
    try {
      await runner.startTransaction('READ COMMITTED');
      const record = await this.decideAndStore(runner, command);
      if (!record) {
        await runner.rollbackTransaction();
        return await this.replay(runner, command);
      }
      await runner.commitTransaction();
      this.onCommitted();
      this.ops.observeDecision(record.handled);
      return { replayed: false, record: record.record, response: record.response };
    } catch (error) {
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      if (error instanceof GatewayError) throw error;
      if (isStoreUnavailable(error)) throw new GatewayError('UNAVAILABLE', 'the activation store is unavailable; nothing was accepted, retry later', error);
      throw error;
    } finally {
      await runner.release().catch(() => undefined);
    }
  }

  /** Returns null when the request id was already used by this bank. */
  private async decideAndStore(db: QueryRunner, command: ActivateAccountCommand): Promise<{ record: ActivationRecord; response: StoredResponse; handled: RequestHandled } | null> {
    // One decision at a time per national ID: its events then get outbox ids
    // (publication order) in the order the decisions were made and committed.
    await db.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`activation:${command.nationalId}`]);
    // An ATM request and its reversal advice are serialised on the request's key (see AdviseReversal).
    if (command.atm) await db.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [reversalLockKey(command.bank.code, command.requestId)]);
    const rows: { national_id: string; mobile: string; status: RegistrationStatus }[] = await db.query(
      `SELECT national_id, mobile, status FROM registration WHERE national_id = $1 OR (mobile = $2 AND status <> 'CLOSED')`,
      [command.nationalId, command.mobile],
    );
    const registration = rows.find((row) => row.national_id === command.nationalId) ?? null;
    const decision: Decision = decide({
      channelAllowed: command.bank.channels.has(command.channel),
      registration,
      mobile: command.mobile,
      mobileHeldByAnother: rows.some((row) => row.national_id !== command.nationalId && row.mobile === command.mobile && row.status !== 'CLOSED'),
    });
    const record: ActivationRecord = {
      activationId: randomUUID(),
      requestId: command.requestId,
      bankCode: command.bank.code,
      channel: command.channel,
      nationalId: command.nationalId,
      mobile: command.mobile,
      status: decision.outcome,
      reason: decision.reason,
      decidedAt: new Date(),
    };
    const response = command.renderResponse(record);
    const inserted: unknown[] = await db.query(
      `INSERT INTO activation_request
         (activation_id, bank_code, request_id, channel, national_id, mobile, customer_reference, request_digest,
          status, reason, decided_at, response_status, response_body,
          acquirer_id, terminal_id, stan, rrn, transmitted_at, pan_hash, accepted)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
       ON CONFLICT (bank_code, request_id) DO NOTHING
       RETURNING activation_id`,
      [
        record.activationId,
        record.bankCode,
        record.requestId,
        record.channel,
        record.nationalId,
        record.mobile,
        command.customerReference,
        command.requestDigest,
        record.status,
        record.reason,
        record.decidedAt,
        response.status,
        response.body,
        command.atm?.acquirerId ?? null,
        command.atm?.terminalId ?? null,
        command.atm?.stan ?? null,
        command.atm?.rrn ?? null,
        command.atm?.transmittedAt ?? null,
        command.atm?.panHash ?? null,
        record.status === 'ACCEPTED',
      ],
    );
    if (inserted.length === 0) return null;
    const decidedAt = record.decidedAt.toISOString();
    const handled: RequestHandled = {
      bankCode: record.bankCode,
      channel: record.channel,
      requestId: record.requestId,
      activationId: record.activationId,
      outcome: decision.outcome,
      reason: decision.reason,
      errorCode: null,
      latencyMs: Math.round((performance.now() - command.receivedAt) * 100) / 100,
      subjectHash: this.subjects.hash(record.nationalId),
      handledAt: decidedAt,
      replayed: false,
    };
    await appendToOutbox(db, [
      {
        topic: TOPICS.activations,
        key: record.nationalId,
        event: cloudEvent(
          record.status === 'ACCEPTED' ? EVENT_TYPES.activationAccepted : EVENT_TYPES.activationRejected,
          record.activationId,
          {
            activationId: record.activationId,
            requestId: record.requestId,
            bankCode: record.bankCode,
            channel: record.channel,
            nationalId: record.nationalId,
            mobile: record.mobile,
            outcome: decision.outcome,
            reason: decision.reason,
            decidedAt,
            ...(command.atm ? { terminalId: command.atm.terminalId, stan: command.atm.stan, rrn: command.atm.rrn } : {}),
          },
          record.decidedAt,
        ),
      },
      requestHandledEvent(handled),
    ]);
    if (command.atm && record.status === 'ACCEPTED') await applyPendingReversal(db, record.bankCode, record.requestId);
    return { record, response, handled };
  }

  private async replay(db: QueryRunner, command: ActivateAccountCommand): Promise<ActivationResult> {
    const [stored]: { request_digest: string; response_status: number; response_body: string; activation_id: string; accepted: boolean; reason: DecisionReason | null; national_id: string }[] = await db.query(
      `SELECT request_digest, response_status, response_body, activation_id, accepted, reason, national_id FROM activation_request WHERE bank_code = $1 AND request_id = $2`,
      [command.bank.code, command.requestId],
    );
    if (!stored) throw new Error('request id conflicted but no stored request was found');
    if (stored.request_digest !== command.requestDigest) {
      throw new GatewayError('REQUEST_ID_REUSED', `request id "${command.requestId}" was already used by ${command.bank.code} with a different body`);
    }
    this.ops.record({
      bankCode: command.bank.code,
      channel: command.channel,
      requestId: command.requestId,
      activationId: stored.activation_id,
      outcome: stored.accepted ? 'ACCEPTED' : 'REJECTED',
      reason: stored.accepted ? null : stored.reason,
      errorCode: null,
      latencyMs: Math.round((performance.now() - command.receivedAt) * 100) / 100,
      subjectHash: this.subjects.hash(stored.national_id),
      replayed: true,
    });
    return { replayed: true, response: { status: stored.response_status, body: stored.response_body } };
  }
}
