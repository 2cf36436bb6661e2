import { DataSource } from 'typeorm';
import { Sql } from '../database/sql';
import type { OutboxMessage } from '../outbox/cloud-event';
import { ActivationRecord, ActivationStatus, Channel, DecisionReason } from './activation.types';
import { ActivationResult } from './activation-result';

/** A decision about to be stored with its request and its answer. */
export interface NewActivation extends ActivationRecord {
  customerReference: string | null;
  requestDigest: string;
  /** Its outbox events (the decision, the request-handled record), stored if and only if the row is. */
  events: OutboxMessage[];
  /** The channel's answer, replayed as is. */
  responseStatus: number;
  responseBody: string;
  /** ATM requests only (spec 4.2); never the PAN itself. */
  pointOfService: { acquirerId: string; terminalId: string; stan: string; rrn: string; transmittedAt: string; panHash: string } | null;
}

/** What a repeated request id is answered from. */
export interface StoredRequest {
  activationId: string;
  nationalId: string;
  requestDigest: string;
  accepted: boolean;
  reason: DecisionReason | null;
  responseStatus: number;
  responseBody: string;
}

/** A request as it stands, for GET /v1/activations/{requestId}. */
export interface StoredActivation extends Pick<ActivationRecord, 'activationId' | 'requestId' | 'bankCode' | 'channel' | 'status' | 'reason' | 'decidedAt'> {
  /** Why the identity core failed it. */
  resultReason: string | null;
  completedAt: Date | null;
}

/** An ATM activation just marked reversed: what its reversal-advised event says. */
export interface ReversedActivation extends Pick<ActivationRecord, 'activationId' | 'requestId' | 'bankCode' | 'channel' | 'nationalId' | 'mobile' | 'decidedAt'> {
  reversedAt: Date;
  terminalId: string;
  stan: string;
  rrn: string;
}

/**
 * activation_request and atm_pending_reversal: every statement the
 * activation use cases run on them. Methods that must share the caller's
 * transaction take it (`tx`); the others use the pool.
 */
export class ActivationRepository {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * Transaction-scoped advisory locks on `keys`, taken in one statement in hash order, so two
   * transactions locking overlapping sets cannot wait on each other (the function is the one
   * definition of a key's lock: migration `1764200000000-locks-then-facts`).
   */
  async lockInOrder(tx: Sql, keys: Iterable<string>): Promise<void> {
    await tx.query(`SELECT gateway_lock_in_order($1::text[])`, [[...keys]]);
  }

  /**
   * Inserts the requests whose (bank, request id) is new and, in the same statement, the outbox events of
   * those that were inserted, in the order given (their ids are the publication order). One round trip
   * for both: a statement costs a socket write and a parse whatever its rows. Returns the activation ids
   * inserted.
   */
  async insertNew(tx: Sql, rows: readonly NewActivation[]): Promise<Set<string>> {
    if (rows.length === 0) return new Set();
    const events = rows.flatMap((row) => row.events.map((message) => ({ activationId: row.activationId, message })));
    const inserted: { activation_id: string }[] = await tx.query(
      `WITH inserted AS (
         INSERT INTO activation_request
           (activation_id, bank_code, request_id, channel, national_id, mobile, customer_reference, request_digest,
            status, reason, decided_at, response_status, response_body,
            acquirer_id, terminal_id, stan, rrn, transmitted_at, pan_hash, accepted)
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                              $9::text[], $10::text[], $11::timestamptz[], $12::int[], $13::text[],
                              $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::bool[])
         ON CONFLICT (bank_code, request_id) DO NOTHING
         RETURNING activation_id),
       events AS (
         INSERT INTO outbox_event (topic, message_key, payload)
         SELECT e.topic, e.message_key, e.payload
           FROM unnest($21::uuid[], $22::text[], $23::text[], $24::text[]) WITH ORDINALITY AS e(activation_id, topic, message_key, payload, position)
          WHERE e.activation_id IN (SELECT activation_id FROM inserted)
          ORDER BY e.position)
       SELECT activation_id FROM inserted`,
      [
        ...columns(rows, [
        (r) => r.activationId,
        (r) => r.bankCode,
        (r) => r.requestId,
        (r) => r.channel,
        (r) => r.nationalId,
        (r) => r.mobile,
        (r) => r.customerReference,
        (r) => r.requestDigest,
        (r) => r.status,
        (r) => r.reason,
        (r) => r.decidedAt.toISOString(),
        (r) => r.responseStatus,
        (r) => r.responseBody,
        (r) => r.pointOfService?.acquirerId ?? null,
        (r) => r.pointOfService?.terminalId ?? null,
        (r) => r.pointOfService?.stan ?? null,
        (r) => r.pointOfService?.rrn ?? null,
        (r) => r.pointOfService?.transmittedAt ?? null,
        (r) => r.pointOfService?.panHash ?? null,
        (r) => r.status === 'ACCEPTED',
        ]),
        ...columns(events, [(e) => e.activationId, (e) => e.message.topic, (e) => e.message.key, (e) => JSON.stringify(e.message.event)]),
      ],
    );
    return new Set(inserted.map((row) => row.activation_id));
  }

  /** The stored request a repeated request id is answered from, or null. */
  async findStoredRequest(sql: Sql, bankCode: string, requestId: string): Promise<StoredRequest | null> {
    const [stored]: StoredRequest[] = await sql.query(
      `SELECT activation_id AS "activationId", national_id AS "nationalId", request_digest AS "requestDigest", accepted, reason,
              response_status AS "responseStatus", response_body AS "responseBody"
         FROM activation_request WHERE bank_code = $1 AND request_id = $2`,
      [bankCode, requestId],
    );
    return stored ?? null;
  }

  /** A bank's request by its request id, for reading back; null when the bank never submitted it. */
  async findByRequestId(bankCode: string, requestId: string): Promise<StoredActivation | null> {
    const [stored]: StoredActivation[] = await this.dataSource.query(
      `SELECT activation_id AS "activationId", request_id AS "requestId", bank_code AS "bankCode", channel, status, reason,
              result_reason AS "resultReason", decided_at AS "decidedAt", completed_at AS "completedAt"
         FROM activation_request WHERE bank_code = $1 AND request_id = $2`,
      [bankCode, requestId],
    );
    return stored ?? null;
  }

  /**
   * Marks an ATM activation that was accepted when decided (whatever the identity core reported since)
   * as reversed, once; null when there is no such activation, or it was reversed already.
   */
  async reverseAccepted(tx: Sql, bankCode: string, requestId: string): Promise<ReversedActivation | null> {
    // In a CTE: TypeORM returns [rows, count] for a bare UPDATE ... RETURNING.
    const [reversed]: ReversedActivation[] = await tx.query(
      `WITH reversed AS (
         UPDATE activation_request SET status = 'REVERSED', reversed_at = now()
          WHERE bank_code = $1 AND request_id = $2 AND channel = 'ATM' AND accepted AND reversed_at IS NULL
          RETURNING activation_id, request_id, bank_code, channel, national_id, mobile, decided_at, reversed_at, terminal_id, stan, rrn)
       SELECT activation_id AS "activationId", request_id AS "requestId", bank_code AS "bankCode", channel, national_id AS "nationalId", mobile,
              decided_at AS "decidedAt", reversed_at AS "reversedAt", terminal_id AS "terminalId", stan, rrn
         FROM reversed`,
      [bankCode, requestId],
    );
    return reversed ?? null;
  }

  /** What a reversal advice finds of its original when it cannot reverse it: nothing, or whether it was accepted, reversed, and on which channel. */
  async reversalTarget(tx: Sql, bankCode: string, requestId: string): Promise<{ accepted: boolean; reversed: boolean; channel: Channel } | null> {
    const [target] = await tx.query(
      `SELECT accepted, reversed_at IS NOT NULL AS reversed, channel FROM activation_request WHERE bank_code = $1 AND request_id = $2`,
      [bankCode, requestId],
    );
    return target ?? null;
  }

  /** Keeps a reversal whose original is not known yet, to apply when it is accepted. */
  async addPendingReversal(tx: Sql, bankCode: string, requestId: string): Promise<void> {
    await tx.query(`INSERT INTO atm_pending_reversal (bank_code, request_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [bankCode, requestId]);
  }

  /** Removes the pending reversals of these requests, in one statement; returns the requests that had one. */
  async takePendingReversals(tx: Sql, requests: readonly { bankCode: string; requestId: string }[]): Promise<{ bankCode: string; requestId: string }[]> {
    if (requests.length === 0) return [];
    return tx.query(
      `WITH taken AS (
         DELETE FROM atm_pending_reversal p USING unnest($1::text[], $2::text[]) AS r(bank_code, request_id)
          WHERE p.bank_code = r.bank_code AND p.request_id = r.request_id
         RETURNING p.bank_code, p.request_id)
       SELECT bank_code AS "bankCode", request_id AS "requestId" FROM taken`,
      [requests.map((r) => r.bankCode), requests.map((r) => r.requestId)],
    );
  }

  /** An activation a result names, locked until the caller's transaction ends; null when none is known. */
  async lockForResult(tx: Sql, activationId: string): Promise<{ status: ActivationStatus; bankCode: string; channel: Channel; requestId: string } | null> {
    const [locked] = await tx.query(
      `SELECT status, bank_code AS "bankCode", channel, request_id AS "requestId" FROM activation_request WHERE activation_id = $1 FOR UPDATE`,
      [activationId],
    );
    return locked ?? null;
  }

  /** The identity core's result on an accepted activation: ACTIVATED or FAILED, with when and why. */
  async complete(tx: Sql, result: ActivationResult): Promise<void> {
    await tx.query(`UPDATE activation_request SET status = $2, completed_at = $3, result_reason = $4 WHERE activation_id = $1`, [
      result.activationId,
      result.result,
      result.completedAt,
      result.reason,
    ]);
  }

  /** Records a result as received, applied or not (and why not); false when this very result was recorded before (a redelivered batch). */
  async recordResult(tx: Sql, result: ActivationResult, applied: boolean, notAppliedBecause: string | null): Promise<boolean> {
    const inserted: unknown[] = await tx.query(
      `INSERT INTO activation_result (activation_id, result, reason, completed_at, applied, not_applied_because) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (activation_id, result, completed_at) DO NOTHING RETURNING id`,
      [result.activationId, result.result, result.reason, result.completedAt, applied, notAppliedBecause],
    );
    return inserted.length > 0;
  }
}

/** Row values as one array per column, for INSERT ... SELECT FROM unnest(...). */
function columns<T>(rows: readonly T[], pick: ((row: T) => unknown)[]): unknown[][] {
  return pick.map((column) => rows.map(column));
}
