import { randomUUID } from 'node:crypto';
import { outsideRequestContext } from '../logging/json-logger';
import { BankProfile } from '../banks/bank-directory';
import { Sql, StoreSession, Transactions } from '../database/sql';
import { GatewayError, asStoreUnavailable, isStoreUnavailable, storeUnavailable } from '../common/gateway-error';
import { OpsRecorder } from '../ops/ops-recorder';
import { decisionHandled, RequestHandled, requestHandledEvent } from '../ops/request-handled';
import { KeyStore } from '../keys/key-store';
import { RegistrationReadModel } from '../registry/registration-read-model';
import { ActivationRecord, Channel, Decision } from './activation.types';
import { ActivationRepository } from './activation.repository';
import { decisionEvent } from './activation-events';
import { decide } from './decision';
import { applyPendingReversals, reversalLockKey } from './advise-reversal.use-case';

export type { ActivationRecord } from './activation.types';

/**
 * The channel's own answer to a decision, stored with it so that a repeat of the request is answered
 * exactly as the first time. Opaque here: signed JSON keeps its status and JSON body; ATM the 0210's
 * fields (status 0), without the PAN and the MAC, which it adds when sending.
 */
export interface ReplayForm {
  status: number;
  body: string;
}

/**
 * Where a request came from beyond its bank and channel, as its channel describes it; opaque to the
 * decision. Stored with the request, published with its decision, and, when reversible, what a later
 * reversal advice names (spec 4.4).
 */
export interface RequestOrigin {
  /** The point of service, stored in the request's row; never the PAN itself (a keyed hash). */
  readonly pointOfService: { acquirerId: string; terminalId: string; stan: string; rrn: string; transmittedAt: string; panHash: string };
  /** Added to the decision event's data (spec 5.1). */
  readonly published: Readonly<Record<string, string>>;
  /** A reversal advice may undo the activation: its decision is serialised with the advice, and an advice that came first applies. */
  readonly reversible: boolean;
}

/** One activation request, as every channel hands it over after translating its wire format. */
export interface ActivateAccountCommand {
  bank: BankProfile;
  channel: Channel;
  requestId: string;
  /** Already checked (10 digits, 1 or 2, Luhn). */
  nationalId: string;
  /** Already normalised to E.164. */
  mobile: string;
  customerReference: string | null;
  /** SHA-256 (hex) of the exact request bytes. */
  requestDigest: string;
  /** performance.now() when the request arrived, for the latency on the ops stream. */
  receivedAt: number;
  /** Null when the bank and channel say all (signed JSON). */
  origin: RequestOrigin | null;
  /** The channel's answer to the decision, stored with it (called inside the decision's transaction). */
  replayForm(record: ActivationRecord): ReplayForm;
}

/** The decision and the channel's answer to it; or, for a request already decided, that stored answer. */
export type ActivationResult = { replayed: false; record: ActivationRecord; replayForm: ReplayForm } | { replayed: true; replayForm: ReplayForm };

/** Requests decided in one transaction at most; a burst larger than this waits for the next batch. */
const MAX_BATCH = 64;
/** Transactions in flight at once: enough to keep PostgreSQL busy, few enough that batches fill up under load. */
const MAX_BATCHES_IN_FLIGHT = 4;

interface Waiting {
  command: ActivateAccountCommand;
  resolve(result: ActivationResult): void;
  reject(error: unknown): void;
}

type Decided = { command: ActivateAccountCommand; record: ActivationRecord; replayForm: ReplayForm; handled: RequestHandled };

/**
 * The one activation use case (spec section 2). The decision, the answer and
 * its events are committed in one transaction before the channel answers;
 * a repeated request id gets the stored answer, never a second decision.
 *
 * Requests that arrive while earlier ones are being stored are decided
 * together: one transaction, one statement per step for the whole batch
 * (locks, registrations, decisions, outbox). Alone, a request is its own
 * batch and waits for nothing; under load the number of round trips and
 * commits per request falls with the batch size, which is what bounded
 * throughput (see the README's performance section).
 */
export class ActivateAccount {
  private readonly queue: Waiting[] = [];
  private batchesInFlight = 0;

  constructor(
    private readonly transactions: Transactions,
    private readonly activations: ActivationRepository,
    private readonly registrations: RegistrationReadModel,
    /** The national ID's keyed hash on the ops stream. */
    private readonly subjects: Pick<KeyStore, 'subjectHash'>,
    private readonly onCommitted: () => void,
    private readonly ops: OpsRecorder,
  ) {}

  execute(command: ActivateAccountCommand): Promise<ActivationResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ command, resolve, reject });
      this.startBatches();
    });
  }

  private startBatches(): void {
    while (this.batchesInFlight < MAX_BATCHES_IN_FLIGHT && this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      this.batchesInFlight++;
      // A batch decides many requests: its log lines (and what it starts) belong to none of them.
      void outsideRequestContext(() => this.runBatch(batch)).finally(() => {
        this.batchesInFlight--;
        this.startBatches();
      });
    }
  }

  private async runBatch(batch: Waiting[]): Promise<void> {
    let connected = false;
    try {
      await this.transactions.session(async (session) => {
        connected = true;
        await this.decideBatch(session, batch);
      });
    } catch (error) {
      // No connection to be had: nothing ran, nothing was accepted.
      if (!connected) for (const waiting of batch) waiting.reject(storeUnavailable(error));
      else for (const waiting of batch) waiting.reject(error);
    }
  }

  /** One transaction for the batch, then the answers: decisions, and replays read on the same connection. */
  private async decideBatch(session: StoreSession, batch: Waiting[]): Promise<void> {
    let decided: (Decided | null)[];
    try {
      decided = await session.transaction((tx) => this.decideAndStore(tx, batch.map((w) => w.command)));
    } catch (error) {
      if (isStoreUnavailable(error)) {
        for (const waiting of batch) waiting.reject(storeUnavailable(error));
        return;
      }
      if (batch.length === 1) {
        batch[0].reject(error);
        return;
      }
      // One request the store refuses (or a deadlock) must not fail the others: each again, alone.
      for (const waiting of batch) await this.runBatch([waiting]);
      return;
    }
    this.onCommitted();
    for (const [i, waiting] of batch.entries()) {
      const outcome = decided[i];
      if (outcome) {
        this.ops.observeDecision(outcome.handled);
        waiting.resolve({ replayed: false, record: outcome.record, replayForm: outcome.replayForm });
      } else {
        await this.replay(session.sql, waiting.command).then(waiting.resolve, (error) => waiting.reject(asStoreUnavailable(error)));
      }
    }
  }

  /**
   * Decides and stores a batch in the caller's transaction. Per request: its
   * decision, or null when its request id was already used by its bank (in
   * the store, or earlier in this batch): the caller replays those.
   */
  private async decideAndStore(db: Sql, commands: ActivateAccountCommand[]): Promise<(Decided | null)[]> {
    // One decision at a time per national ID: its events then get outbox ids
    // (publication order) in the order the decisions were made and committed.
    // An ATM request and its reversal advice are serialised on the request's key (see AdviseReversal).
    const lockKeys = new Set<string>();
    for (const command of commands) {
      lockKeys.add(`activation:${command.nationalId}`);
      if (command.origin?.reversible) lockKeys.add(reversalLockKey(command.bank.code, command.requestId));
    }
    const registrations = await this.registrations.factsAfterLocks(
      db,
      lockKeys,
      commands.map((c) => c.nationalId),
      commands.map((c) => c.mobile),
    );
    const byNationalId = new Map(registrations.map((row) => [row.nationalId, row]));
    // Who holds each mobile (rule 6), once for the whole batch.
    const holders = new Map<string, string[]>();
    for (const row of registrations) if (row.status !== 'CLOSED') holders.set(row.mobile, [...(holders.get(row.mobile) ?? []), row.nationalId]);
    const seenRequests = new Set<string>();
    const candidates: (Decided | null)[] = commands.map((command) => {
      const requestKey = `${command.bank.code}\u0000${command.requestId}`;
      if (seenRequests.has(requestKey)) return null; // the same request twice in one batch: the second replays the first
      seenRequests.add(requestKey);
      const decision: Decision = decide({
        channelAllowed: command.bank.channels.has(command.channel),
        registration: byNationalId.get(command.nationalId) ?? null,
        mobile: command.mobile,
        mobileHeldByAnother: (holders.get(command.mobile) ?? []).some((holder) => holder !== command.nationalId),
      });
      return this.decided(command, decision);
    });
    const toInsert = candidates.filter((c): c is Decided => c !== null);
    const inserted = await this.activations.insertNew(
      db,
      toInsert.map((decided) => ({
        ...decided.record,
        events: [decisionEvent(decided.record, decided.command.origin?.published), requestHandledEvent(decided.handled)],
        customerReference: decided.command.customerReference,
        requestDigest: decided.command.requestDigest,
        responseStatus: decided.replayForm.status,
        responseBody: decided.replayForm.body,
        pointOfService: decided.command.origin?.pointOfService ?? null,
      })),
    );
    const stored = candidates.map((c) => (c && inserted.has(c.record.activationId) ? c : null));
    await applyPendingReversals(
      this.activations,
      db,
      stored.flatMap((d) => (d?.command.origin?.reversible && d.record.status === 'ACCEPTED' ? [{ bankCode: d.record.bankCode, requestId: d.record.requestId }] : [])),
    );
    return stored;
  }

  private decided(command: ActivateAccountCommand, decision: Decision): Decided {
    const record: ActivationRecord = {
      activationId: randomUUID(),
      requestId: command.requestId,
      bankCode: command.bank.code,
      channel: command.channel,
      nationalId: command.nationalId,
      mobile: command.mobile,
      status: decision.outcome,
      reason: decision.reason,
      decidedAt: new Date(),
    };
    const handled: RequestHandled = {
      ...decisionHandled({
        ...record,
        outcome: decision.outcome,
        subjectHash: this.subjects.subjectHash(record.nationalId),
        elapsedMs: performance.now() - command.receivedAt,
        replayed: false,
      }),
      handledAt: record.decidedAt.toISOString(),
    };
    return { command, record, replayForm: command.replayForm(record), handled };
  }

  private async replay(db: Sql, command: ActivateAccountCommand): Promise<ActivationResult> {
    const stored = await this.activations.findStoredRequest(db, command.bank.code, command.requestId);
    if (!stored) throw new Error('request id conflicted but no stored request was found');
    if (stored.requestDigest !== command.requestDigest) {
      throw new GatewayError('REQUEST_ID_REUSED', `request id "${command.requestId}" was already used by ${command.bank.code} with a different body`);
    }
    this.ops.record(
      decisionHandled({
        bankCode: command.bank.code,
        channel: command.channel,
        requestId: command.requestId,
        activationId: stored.activationId,
        outcome: stored.accepted ? 'ACCEPTED' : 'REJECTED',
        reason: stored.reason,
        subjectHash: this.subjects.subjectHash(stored.nationalId),
        elapsedMs: performance.now() - command.receivedAt,
        replayed: true,
      }),
    );
    return { replayed: true, replayForm: { status: stored.responseStatus, body: stored.responseBody } };
  }
}


