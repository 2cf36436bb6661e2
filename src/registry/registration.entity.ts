import { Column, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import type { RegistrationStatus } from '../activation/activation.types';

/** Read model of the identity core's registrations (spec 5.2). */
@Entity({ name: 'registration' })
export class RegistrationEntity {
  @PrimaryColumn({ name: 'national_id', type: 'varchar', length: 10 })
  nationalId!: string;

  /** E.164. */
  @Index()
  @Column({ type: 'varchar', length: 13 })
  mobile!: string;

  @Column({ type: 'varchar', length: 20 })
  status!: RegistrationStatus;

  /** Increasing per national ID; an update not above it is ignored. */
  @Column({ type: 'bigint' })
  version!: string;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
