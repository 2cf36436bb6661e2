import { Sql } from '../database/sql';

/** Refusals of one minute, channel, source, bank and code. */
export interface RefusedCount {
  /** Start of the minute, ms since the epoch. */
  minute: number;
  channel: string;
  source: string;
  bankCode: string;
  code: string;
  refused: number;
}

/** One refused ATM message, as sampled. */
export interface RefusedAtmMessage {
  acquirerId: string | null;
  bankCode: string | null;
  mti: string;
  stan: string | null;
  rrn: string | null;
  terminalId: string | null;
  code: string;
  reason: string;
  at: Date;
}

/** One refused HTTP request, as sampled. */
export interface RefusedHttpRequest {
  source: string;
  bankCode: string | null;
  method: string;
  requestId: string | null;
  code: string;
  reason: string;
  at: Date;
}

/** What RefusedTraffic writes: counts added up per minute, samples, and the pruning of both. */
export interface RefusedTrafficStore {
  addCounts(counts: readonly RefusedCount[]): Promise<void>;
  addAtmSamples(samples: readonly RefusedAtmMessage[]): Promise<void>;
  addHttpSamples(samples: readonly RefusedHttpRequest[]): Promise<void>;
  pruneOlderThan(days: number): Promise<void>;
}

/** refused_traffic_minute, atm_refused_message and http_refused_request: every statement on them. */
export class RefusedTrafficLog implements RefusedTrafficStore {
  constructor(private readonly sql: Sql) {}

  /** Counts add up: several writes in a minute, and several instances, land in one row per key. */
  async addCounts(counts: readonly RefusedCount[]): Promise<void> {
    if (counts.length === 0) return;
    await this.sql.query(
      `INSERT INTO refused_traffic_minute (minute, channel, source, bank_code, code, refused)
       SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
       ON CONFLICT (minute, channel, source, bank_code, code) DO UPDATE SET refused = refused_traffic_minute.refused + EXCLUDED.refused`,
      [counts.map((c) => new Date(c.minute)), counts.map((c) => c.channel), counts.map((c) => c.source), counts.map((c) => c.bankCode), counts.map((c) => c.code), counts.map((c) => c.refused)],
    );
  }

  async addAtmSamples(samples: readonly RefusedAtmMessage[]): Promise<void> {
    if (samples.length === 0) return;
    await this.sql.query(
      `INSERT INTO atm_refused_message (acquirer_id, bank_code, mti, stan, rrn, terminal_id, response_code, reason, received_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])`,
      [
        samples.map((s) => s.acquirerId),
        samples.map((s) => s.bankCode),
        samples.map((s) => s.mti),
        samples.map((s) => s.stan),
        samples.map((s) => s.rrn),
        samples.map((s) => s.terminalId),
        samples.map((s) => s.code),
        samples.map((s) => s.reason),
        samples.map((s) => s.at),
      ],
    );
  }

  async addHttpSamples(samples: readonly RefusedHttpRequest[]): Promise<void> {
    if (samples.length === 0) return;
    await this.sql.query(
      `INSERT INTO http_refused_request (source_address, bank_code, method, request_id, code, reason, received_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])`,
      [
        samples.map((s) => s.source.slice(0, 64)),
        samples.map((s) => s.bankCode),
        samples.map((s) => s.method.slice(0, 8)),
        samples.map((s) => s.requestId),
        samples.map((s) => s.code),
        samples.map((s) => s.reason),
        samples.map((s) => s.at),
      ],
    );
  }

  async pruneOlderThan(days: number): Promise<void> {
    await this.sql.query(`DELETE FROM refused_traffic_minute WHERE minute < now() - make_interval(days => $1)`, [days]);
    await this.sql.query(`DELETE FROM atm_refused_message WHERE received_at < now() - make_interval(days => $1)`, [days]);
    await this.sql.query(`DELETE FROM http_refused_request WHERE received_at < now() - make_interval(days => $1)`, [days]);
  }
}
