import { Column, CreateDateColumn, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';

@Entity({ name: 'bank' })
export class BankEntity {
  /** The 4-letter bank part of the SWIFT BIC. */
  @PrimaryColumn({ type: 'varchar', length: 4 })
  code!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ type: 'text', array: true })
  channels!: string[];

  /** ISO 8583 field 32 values that identify this bank. */
  @Column({ name: 'acquirer_ids', type: 'text', array: true, default: () => "'{}'" })
  acquirerIds!: string[];

  @Column({ name: 'rate_limit_per_second', type: 'integer' })
  rateLimitPerSecond!: number;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
