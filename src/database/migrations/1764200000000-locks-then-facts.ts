import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A batch's locks and the registrations it decides on, in one round trip.
 *
 * `gateway_lock_in_order` takes transaction-scoped advisory locks on keys in
 * the order of their hashes, so that two transactions locking overlapping
 * sets never deadlock: the one definition of a key's lock. The reads that
 * follow must see everything committed before the locks were granted, so they
 * cannot share a statement with the locking (a statement reads one snapshot,
 * taken before it waited). `registration_facts_after_locks` is VOLATILE
 * PL/pgSQL: each statement in it takes a fresh snapshot under READ
 * COMMITTED, so its read comes after its locks, as two statements would.
 */
export class LocksThenFacts1764200000000 implements MigrationInterface {
  name = 'LocksThenFacts1764200000000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE FUNCTION gateway_lock_in_order(keys text[]) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
      BEGIN
        PERFORM pg_advisory_xact_lock(lock_id)
          FROM (SELECT DISTINCT hashtextextended(key, 0) AS lock_id FROM unnest(keys) AS key ORDER BY 1) AS locks;
      END
      $$`);
    await db.query(`
      CREATE FUNCTION registration_facts_after_locks(keys text[], national_ids text[], mobiles text[])
        RETURNS TABLE (national_id varchar, mobile varchar, status varchar) LANGUAGE plpgsql VOLATILE AS $$
      BEGIN
        PERFORM gateway_lock_in_order(keys);
        RETURN QUERY SELECT r.national_id, r.mobile, r.status FROM registration r
          WHERE r.national_id = ANY(national_ids) OR (r.mobile = ANY(mobiles) AND r.status <> 'CLOSED');
      END
      $$`);
  }

  async down(db: QueryRunner): Promise<void> {
    await db.query(`DROP FUNCTION registration_facts_after_locks(text[], text[], text[])`);
    await db.query(`DROP FUNCTION gateway_lock_in_order(text[])`);
  }
}
