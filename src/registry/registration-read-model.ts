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
   * In one read, for a batch of requests: the registrations of these national IDs, and every open one
   * (not CLOSED) holding one of these mobiles (rule 6: a mobile in use by another account).
   */
  async factsFor(tx: Sql, nationalIds: Iterable<string>, mobiles: Iterable<string>): Promise<RegistrationFact[]> {
    const rows: { national_id: string; mobile: string; status: RegistrationStatus }[] = await tx.query(
      `SELECT national_id, mobile, status FROM registration WHERE national_id = ANY($1::text[]) OR (mobile = ANY($2::text[]) AND status <> 'CLOSED')`,
      [[...new Set(nationalIds)], [...new Set(mobiles)]],
    );
    return rows.map((row) => ({ nationalId: row.national_id, mobile: row.mobile, status: row.status }));
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
