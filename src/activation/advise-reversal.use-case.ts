import { asStoreUnavailable } from '../common/gateway-error';
import { Sql, Transactions } from '../database/sql';
import { appendToOutbox } from '../outbox/outbox.repository';
import { ActivationRepository } from './activation.repository';
import { reversalAdvisedEvent } from './activation-events';

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
async function reverse(activations: ActivationRepository, tx: Sql, bankCode: string, requestId: string): Promise<boolean> {
  const reversed = await activations.reverseAccepted(tx, bankCode, requestId);
  if (!reversed) return false;
  await appendToOutbox(tx, [reversalAdvisedEvent(reversed)]);
  return true;
}

/**
 * Called by ActivateAccount, under the requests' locks, for the reversible activations a batch accepted:
 * a reversal that came first now applies. One statement for the batch; one more per reversal found.
 */
export async function applyPendingReversals(activations: ActivationRepository, tx: Sql, accepted: readonly { bankCode: string; requestId: string }[]): Promise<void> {
  for (const pending of await activations.takePendingReversals(tx, accepted)) await reverse(activations, tx, pending.bankCode, pending.requestId);
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
    private readonly transactions: Transactions,
    private readonly activations: ActivationRepository,
    private readonly onCommitted: () => void,
  ) {}

  async execute(bankCode: string, originalRequestId: string): Promise<ReversalResult> {
    try {
      const result = await this.transactions.run(async (tx): Promise<ReversalResult> => {
        await this.activations.lockInOrder(tx, [reversalLockKey(bankCode, originalRequestId)]);
        if (await reverse(this.activations, tx, bankCode, originalRequestId)) return 'REVERSED';
        const existing = await this.activations.reversalTarget(tx, bankCode, originalRequestId);
        // A reversal applies only to an activation that came from an ATM (of that acquirer: the key starts with it).
        if (existing && existing.channel !== 'ATM') return 'NOT_ACCEPTED';
        if (existing) return existing.reversed ? 'ALREADY_REVERSED' : 'NOT_ACCEPTED';
        await this.activations.addPendingReversal(tx, bankCode, originalRequestId);
        return 'PENDING';
      });
      if (result === 'REVERSED') this.onCommitted();
      return result;
    } catch (error) {
      throw asStoreUnavailable(error);
    }
  }
}
