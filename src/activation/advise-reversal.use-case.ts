import { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { GatewayError, isStoreUnavailable } from '../common/gateway-error';
import { EVENT_TYPES, TOPICS } from '../kafka/topics';
import { cloudEvent } from '../outbox/cloud-event';
import { appendToOutbox } from '../outbox/outbox-writer';

export type ReversalResult = 'REVERSED' | 'ALREADY_REVERSED' | 'NOT_ACCEPTED' | 'PENDING';

/** The advisory lock both an ATM activation and its reversal take, so neither can slip past the other. */
export function reversalLockKey(bankCode: string, requestId: string): string {
  return `atm-request:${bankCode}:${requestId}`;
}

/**
 * Marks an activation that was accepted when decided (whatever the identity
 * core reported since) as reversed, and publishes `reversal-advised`, once.
 * Returns false when there is no such activation (yet).
 */
async function reverse(db: EntityManager | QueryRunner, bankCode: string, requestId: string): Promise<boolean> {
  // In a CTE: TypeORM returns [rows, count] for a bare UPDATE ... RETURNING.
  const [row] = await db.query(
    `WITH reversed AS (
       UPDATE activation_request SET status = 'REVERSED', reversed_at = now()
        WHERE bank_code = $1 AND request_id = $2 AND channel = 'ATM' AND accepted AND reversed_at IS NULL
        RETURNING activation_id, request_id, bank_code, channel, national_id, mobile, decided_at, reversed_at, terminal_id, stan, rrn)
     SELECT * FROM reversed`,
    [bankCode, requestId],
  );
  if (!row) return false;
  await appendToOutbox(db, [
    {
      topic: TOPICS.activations,
      key: row.national_id,
      event: cloudEvent(EVENT_TYPES.reversalAdvised, row.activation_id, {
        activationId: row.activation_id,
        requestId: row.request_id,
        bankCode: row.bank_code,
        channel: row.channel,
        nationalId: row.national_id,
        mobile: row.mobile,
        outcome: 'ACCEPTED',
        reason: null,
        decidedAt: new Date(row.decided_at).toISOString(),
        terminalId: row.terminal_id,
        stan: row.stan,
        rrn: row.rrn,
        reversedAt: new Date(row.reversed_at).toISOString(),
      }),
    },
  ]);
  return true;
}

/** Called by ActivateAccount, under the same lock, when an ATM activation is accepted: a reversal that came first now applies. */
export async function applyPendingReversal(db: QueryRunner, bankCode: string, requestId: string): Promise<void> {
  const [pending] = await db.query(
    `WITH taken AS (DELETE FROM atm_pending_reversal WHERE bank_code = $1 AND request_id = $2 RETURNING 1) SELECT * FROM taken`,
    [bankCode, requestId],
  );
  if (pending) await reverse(db, bankCode, requestId);
}

/**
 * Spec 4.4: the ATM never got the 0210 of an activation. One that was
 * accepted is marked REVERSED and `activation.reversal-advised` is published,
 * once, even if the identity core has already reported on it. A reversal
 * whose original is not (yet) known is kept, so an original that arrives late
 * is reversed as soon as it is accepted.
 */
export class AdviseReversal {
  constructor(
    private readonly dataSource: DataSource,
    private readonly onCommitted: () => void,
  ) {}

  async execute(bankCode: string, originalRequestId: string): Promise<ReversalResult> {
    try {
      const result = await this.dataSource.transaction(async (db) => {
        await db.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [reversalLockKey(bankCode, originalRequestId)]);
        if (await reverse(db, bankCode, originalRequestId)) return 'REVERSED' as ReversalResult;
        const [existing] = await db.query(`SELECT accepted, reversed_at, channel FROM activation_request WHERE bank_code = $1 AND request_id = $2`, [bankCode, originalRequestId]);
        // A reversal applies only to an activation that came from an ATM (of that acquirer: the key starts with it).
        if (existing && existing.channel !== 'ATM') return 'NOT_ACCEPTED' as ReversalResult;
        if (existing) return (existing.reversed_at ? 'ALREADY_REVERSED' : 'NOT_ACCEPTED') as ReversalResult;
        await db.query(`INSERT INTO atm_pending_reversal (bank_code, request_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [bankCode, originalRequestId]);
        return 'PENDING' as ReversalResult;
      });
      if (result === 'REVERSED') this.onCommitted();
      return result;
    } catch (error) {
      if (isStoreUnavailable(error)) throw new GatewayError('UNAVAILABLE', 'the activation store is unavailable', error);
      throw error;
    }
  }
}
