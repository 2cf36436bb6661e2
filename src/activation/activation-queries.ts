import { DataSource } from 'typeorm';
import { GatewayError, isStoreUnavailable } from '../common/gateway-error';
import { ActivationStatus, Channel } from './activation.types';

/** The state of a request as a bank may see it (GET /v1/activations/{requestId}). */
export interface ActivationView {
  activationId: string;
  requestId: string;
  bankCode: string;
  channel: Channel;
  status: ActivationStatus;
  reason: string | null;
  decidedAt: string;
  completedAt: string | null;
}

export class ActivationQueries {
  constructor(private readonly dataSource: DataSource) {}

  async byRequestId(bankCode: string, requestId: string): Promise<ActivationView> {
    let rows: {
      activation_id: string;
      request_id: string;
      bank_code: string;
      channel: Channel;
      status: ActivationStatus;
      reason: string | null;
      result_reason: string | null;
      decided_at: Date;
      completed_at: Date | null;
    }[];
    try {
      rows = await this.dataSource.query(
        `SELECT activation_id, request_id, bank_code, channel, status, reason, result_reason, decided_at, completed_at
           FROM activation_request WHERE bank_code = $1 AND request_id = $2`,
        [bankCode, requestId],
      );
    } catch (error) {
      if (isStoreUnavailable(error)) throw new GatewayError('UNAVAILABLE', 'the activation store is unavailable; retry later', error);
      throw error;
    }
    const row = rows[0];
    if (!row) throw new GatewayError('NOT_FOUND', `${bankCode} never submitted request id "${requestId}"`);
    return {
      activationId: row.activation_id,
      requestId: row.request_id,
      bankCode: row.bank_code,
      channel: row.channel,
      status: row.status,
      reason: row.status === 'FAILED' ? row.result_reason : row.reason,
      decidedAt: new Date(row.decided_at).toISOString(),
      completedAt: row.completed_at ? new Date(row.completed_at).toISOString() : null,
    };
  }
}
