import { DataSource } from 'typeorm';
import { RateBudget } from './rate-limiter';

/**
 * The deployment-wide budget as one row per bank in `bank_rate_budget`, a
 * token bucket refilled from the database's clock, so every instance draws
 * from the same bucket whatever their clocks and however the load balancer
 * spreads a bank's traffic. Each lease is one statement on the pool.
 */
export class RateBudgetRepository implements RateBudget {
  constructor(private readonly dataSource: DataSource) {}

  async lease(bankCode: string, perSecond: number, wanted: number): Promise<{ granted: number; available: number }> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const rows: Array<{ granted: number; available: number }> = await this.dataSource.query(
        `WITH current AS (
           SELECT least($2::float8, tokens + $2::float8 * extract(epoch FROM clock_timestamp() - refilled_at)) AS available
             FROM bank_rate_budget WHERE bank_code = $1 FOR UPDATE),
         lease AS (SELECT available, least($3::float8, greatest(0, floor(available))) AS granted FROM current),
         taken AS (
           UPDATE bank_rate_budget SET tokens = lease.available - lease.granted, refilled_at = clock_timestamp()
             FROM lease WHERE bank_code = $1
           RETURNING lease.granted::float8 AS granted, lease.available::float8 AS available)
         SELECT granted, available FROM taken`,
        [bankCode, perSecond, wanted],
      );
      if (rows.length) return { granted: Number(rows[0].granted), available: Number(rows[0].available) };
      // A bank's first request anywhere: its budget starts full, as a bucket does.
      await this.dataSource.query(`INSERT INTO bank_rate_budget (bank_code, tokens, refilled_at) VALUES ($1, $2, clock_timestamp()) ON CONFLICT DO NOTHING`, [bankCode, perSecond]);
    }
    throw new Error(`no rate budget row for ${bankCode}`);
  }
}
