import { Column, Entity, Index, PrimaryColumn, Unique } from 'typeorm';
import type { ActivationStatus, Channel, DecisionReason } from './activation.types';

/** One activation request as decided, with the answer given, for idempotent replays and status queries. */
@Entity({ name: 'activation_request' })
@Unique('activation_request_bank_request_uq', ['bankCode', 'requestId'])
export class ActivationRequestEntity {
  @PrimaryColumn({ name: 'activation_id', type: 'uuid' })
  activationId!: string;

  @Column({ name: 'bank_code', type: 'varchar', length: 4 })
  bankCode!: string;

  /** The bank's idempotency key. */
  @Column({ name: 'request_id', type: 'varchar', length: 64 })
  requestId!: string;

  @Column({ type: 'varchar', length: 20 })
  channel!: Channel;

  @Index()
  @Column({ name: 'national_id', type: 'varchar', length: 10 })
  nationalId!: string;

  /** E.164. */
  @Column({ type: 'varchar', length: 13 })
  mobile!: string;

  @Column({ name: 'customer_reference', type: 'varchar', length: 64, nullable: true })
  customerReference!: string | null;

  /** SHA-256 (hex) of the exact request bytes: same id + other bytes is REQUEST_ID_REUSED. */
  @Column({ name: 'request_digest', type: 'char', length: 64 })
  requestDigest!: string;

  @Column({ type: 'varchar', length: 20 })
  status!: ActivationStatus;

  @Column({ type: 'varchar', length: 40, nullable: true })
  reason!: DecisionReason | null;

  /** Whether the decision was ACCEPTED, whatever happened after (results, reversal). */
  @Column({ type: 'boolean' })
  accepted!: boolean;

  @Column({ name: 'decided_at', type: 'timestamptz' })
  decidedAt!: Date;

  @Column({ name: 'completed_at', type: 'timestamptz', nullable: true })
  completedAt!: Date | null;

  /** The identity core's reason for FAILED (5.3). */
  @Column({ name: 'result_reason', type: 'text', nullable: true })
  resultReason!: string | null;

  /** ATM channel only (spec 4): field 32, 41, 11, 37, 7 and a keyed hash of the PAN (never the PAN). */
  @Column({ name: 'acquirer_id', type: 'varchar', length: 11, nullable: true })
  acquirerId!: string | null;

  @Column({ name: 'terminal_id', type: 'varchar', length: 8, nullable: true })
  terminalId!: string | null;

  @Column({ type: 'char', length: 6, nullable: true })
  stan!: string | null;

  @Column({ type: 'varchar', length: 12, nullable: true })
  rrn!: string | null;

  @Column({ name: 'transmitted_at', type: 'char', length: 10, nullable: true })
  transmittedAt!: string | null;

  @Column({ name: 'pan_hash', type: 'char', length: 64, nullable: true })
  panHash!: string | null;

  @Column({ name: 'reversed_at', type: 'timestamptz', nullable: true })
  reversedAt!: Date | null;

  /** The answer given, replayed as is. */
  @Column({ name: 'response_status', type: 'integer' })
  responseStatus!: number;

  @Column({ name: 'response_body', type: 'text' })
  responseBody!: string;
}
