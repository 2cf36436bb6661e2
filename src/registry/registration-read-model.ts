import { Sql } from '../database/sql';
import { RegistrationStatus } from '../activation/activation.types';
import { RegistrationUpdate } from './registration-update';

/** What a decision needs to know of one registration (spec section 2). */
export interface RegistrationFact {
  nationalId: string;
  mobile: string;
  status: RegistrationStatus;
}

/**
 * The registration read model (spec 5.2), kept by the registrations consumer
 * and read by the activation use case: every statement on `registration`.
 */
export class RegistrationReadModel {
  /**
   * For a batch of requests, in one round trip: first the transaction-scoped advisory locks on
   * `lockKeys` (in hash order, as `ActivationRepository.lockInOrder` takes them), then, read after they
   * are granted, the registrations of these national IDs and every open one (not CLOSED) holding one of
   * these mobiles (rule 6: a mobile in use by another account). The migration
   * `1764200000000-locks-then-facts` says why this needs a function.
   */
  async factsAfterLocks(tx: Sql, lockKeys: Iterable<string>, nationalIds: Iterable<string>, mobiles: Iterable<string>): Promise<RegistrationFact[]> {
    return tx.query(`SELECT national_id AS "nationalId", mobile, status FROM registration_facts_after_locks($1::text[], $2::text[], $3::text[])`, [
      [...lockKeys],
      [...new Set(nationalIds)],
      [...new Set(mobiles)],
    ]);
  }

  /** Versioned upserts: an update whose version is not above the stored one changes nothing. Returns how many rows changed. */
  async apply(tx: Sql, updates: readonly RegistrationUpdate[]): Promise<number> {
    if (updates.length === 0) return 0;
    const changed: unknown[] = await tx.query(
      `INSERT INTO registration (national_id, mobile, status, version, updated_at)
         SELECT * , now() FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::bigint[])
       ON CONFLICT (national_id) DO UPDATE
         SET mobile = EXCLUDED.mobile, status = EXCLUDED.status, version = EXCLUDED.version, updated_at = now()
         WHERE registration.version < EXCLUDED.version
       RETURNING national_id`,
      [updates.map((u) => u.nationalId), updates.map((u) => u.mobile), updates.map((u) => u.status), updates.map((u) => u.version.toString())],
    );
    return changed.length;
  }
}
