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

  /** BANKS_FILE, or CLI once an operator has changed it with the CLI (the file then no longer overrides it). */
  @Column({ name: 'managed_by', type: 'varchar', length: 16, default: 'BANKS_FILE' })
  managedBy!: 'BANKS_FILE' | 'CLI';

  /** The ISO 8583 MAC key sealed under KEY_ENCRYPTION_KEY (libs/keys); never the key itself. */
  @Column({ name: 'mac_key_sealed', type: 'text', nullable: true })
  macKeySealed!: string | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' })
  updatedAt!: Date;
}
