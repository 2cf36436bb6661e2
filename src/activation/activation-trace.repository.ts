import { DataSource } from 'typeorm';

/** One activation request as the operator looks it up: decision, result, ATM fields; personal data in clear (the caller masks it). */
export interface TracedActivation {
  activationId: string;
  bankCode: string;
  requestId: string;
  channel: string;
  nationalId: string;
  mobile: string;
  status: string;
  reason: string | null;
  decidedAt: Date;
  completedAt: Date | null;
  resultReason: string | null;
  acquirerId: string | null;
  terminalId: string | null;
  stan: string | null;
  rrn: string | null;
  responseStatus: number;
}

/** An event the outbox holds about an activation. */
export interface TracedEvent {
  topic: string;
  type: string;
  publishedAt: Date | null;
}

type Row = {
  activation_id: string;
  bank_code: string;
  request_id: string;
  channel: string;
  national_id: string;
  mobile: string;
  status: string;
  reason: string | null;
  decided_at: Date;
  completed_at: Date | null;
  result_reason: string | null;
  acquirer_id: string | null;
  terminal_id: string | null;
  stan: string | null;
  rrn: string | null;
  response_status: number;
};

const COLUMNS = `activation_id, bank_code, request_id, channel, national_id, mobile, status, reason, decided_at, completed_at, result_reason,
                 acquirer_id, terminal_id, stan, rrn, response_status`;

/**
 * What the operator CLI's `requests show` reads of activation_request and
 * outbox_event: read-only, on the pool. Here rather than in the activation
 * and outbox repositories because only the operator's lookup needs these
 * shapes.
 */
export class ActivationTraceRepository {
  constructor(private readonly dataSource: DataSource) {}

  async findByActivationId(activationId: string): Promise<TracedActivation | null> {
    const [row]: Row[] = await this.dataSource.query(`SELECT ${COLUMNS} FROM activation_request WHERE activation_id = $1`, [activationId]);
    return row ? traced(row) : null;
  }

  async findByRequestId(bankCode: string, requestId: string): Promise<TracedActivation | null> {
    const [row]: Row[] = await this.dataSource.query(`SELECT ${COLUMNS} FROM activation_request WHERE bank_code = $1 AND request_id = $2`, [bankCode, requestId]);
    return row ? traced(row) : null;
  }

  /** The activation's events in the order they were written, published or not. */
  async eventsOf(activationId: string): Promise<TracedEvent[]> {
    const rows: { topic: string; type: string; published_at: Date | null }[] = await this.dataSource.query(
      `SELECT topic, payload::jsonb ->> 'type' AS type, published_at FROM outbox_event
        WHERE payload::jsonb -> 'data' ->> 'activationId' = $1 ORDER BY id`,
      [activationId],
    );
    return rows.map((r) => ({ topic: r.topic, type: r.type, publishedAt: r.published_at }));
  }
}

function traced(row: Row): TracedActivation {
  return {
    activationId: row.activation_id,
    bankCode: row.bank_code,
    requestId: row.request_id,
    channel: row.channel,
    nationalId: row.national_id,
    mobile: row.mobile,
    status: row.status,
    reason: row.reason,
    decidedAt: row.decided_at,
    completedAt: row.completed_at,
    resultReason: row.result_reason,
    acquirerId: row.acquirer_id,
    terminalId: row.terminal_id,
    stan: row.stan,
    rrn: row.rrn,
    responseStatus: row.response_status,
  };
}
