import { asStoreUnavailable, GatewayError } from '../common/gateway-error';
import { ActivationRepository, StoredActivation } from './activation.repository';

/** The state of a request as a bank may see it (GET /v1/activations/{requestId}): times as ISO 8601, the identity core's reason once FAILED. */
export type ActivationView = Pick<StoredActivation, 'activationId' | 'requestId' | 'bankCode' | 'channel' | 'status'> & {
  reason: string | null;
  decidedAt: string;
  completedAt: string | null;
};

export class ActivationQueries {
  constructor(private readonly activations: ActivationRepository) {}

  async byRequestId(bankCode: string, requestId: string): Promise<ActivationView> {
    let stored: StoredActivation | null;
    try {
      stored = await this.activations.findByRequestId(bankCode, requestId);
    } catch (error) {
      throw asStoreUnavailable(error);
    }
    if (!stored) throw new GatewayError('NOT_FOUND', `${bankCode} never submitted request id "${requestId}"`);
    return {
      activationId: stored.activationId,
      requestId: stored.requestId,
      bankCode: stored.bankCode,
      channel: stored.channel,
      status: stored.status,
      reason: stored.status === 'FAILED' ? stored.resultReason : stored.reason,
      decidedAt: stored.decidedAt.toISOString(),
      completedAt: stored.completedAt ? stored.completedAt.toISOString() : null,
    };
  }
}
