import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/** A signing certificate registered for a bank; a bank may have several at once (rotation). */
@Entity({ name: 'bank_certificate' })
export class BankCertificateEntity {
  /** base64url SHA-256 of the DER: the JWS `kid`. */
  @PrimaryColumn({ type: 'varchar', length: 43 })
  thumbprint!: string;

  @Index()
  @Column({ name: 'bank_code', type: 'varchar', length: 4 })
  bankCode!: string;

  /** The certificate, followed by any intermediates from the same file. */
  @Column({ type: 'text' })
  pem!: string;

  @Column({ type: 'text' })
  subject!: string;

  @Column({ name: 'not_before', type: 'timestamptz' })
  notBefore!: Date;

  @Column({ name: 'not_after', type: 'timestamptz' })
  notAfter!: Date;

  /** Where it came from: the BANKS_FILE path, or an operator. */
  @Column({ type: 'text' })
  source!: string;

  @Column({ name: 'revoked_at', type: 'timestamptz', nullable: true })
  revokedAt!: Date | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' })
  createdAt!: Date;
}
