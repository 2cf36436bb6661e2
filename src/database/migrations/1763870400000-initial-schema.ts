import { MigrationInterface, QueryRunner } from 'typeorm';

export class InitialSchema1763870400000 implements MigrationInterface {
  name = 'InitialSchema1763870400000';

  async up(db: QueryRunner): Promise<void> {
    await db.query(`
      CREATE TABLE bank (
        code varchar(4) PRIMARY KEY,
        name text NOT NULL,
        channels text[] NOT NULL,
        acquirer_ids text[] NOT NULL DEFAULT '{}',
        rate_limit_per_second integer NOT NULL CHECK (rate_limit_per_second > 0),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`
      CREATE TABLE bank_certificate (
        thumbprint varchar(43) PRIMARY KEY,
        bank_code varchar(4) NOT NULL REFERENCES bank(code),
        pem text NOT NULL,
        subject text NOT NULL,
        not_before timestamptz NOT NULL,
        not_after timestamptz NOT NULL,
        source text NOT NULL,
        revoked_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await db.query(`CREATE INDEX bank_certificate_bank_idx ON bank_certificate (bank_code)`);
    await db.query(`
      CREATE TABLE registration (
        national_id varchar(10) PRIMARY KEY,
        mobile varchar(13) NOT NULL,
        status varchar(20) NOT NULL CHECK (status IN ('PENDING_ACTIVATION','ACTIVE','SUSPENDED','CLOSED')),
        version bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    // Rule 6 (MOBILE_IN_USE) looks registrations up by mobile.
    await db.query(`CREATE INDEX registration_mobile_idx ON registration (mobile)`);
    await db.query(`
      CREATE TABLE activation_request (
        activation_id uuid PRIMARY KEY,
        bank_code varchar(4) NOT NULL,
        request_id varchar(64) NOT NULL,
        channel varchar(20) NOT NULL,
        national_id varchar(10) NOT NULL,
        mobile varchar(13) NOT NULL,
        customer_reference varchar(64),
        request_digest char(64) NOT NULL,
        status varchar(20) NOT NULL,
        reason varchar(40),
        decided_at timestamptz NOT NULL,
        completed_at timestamptz,
        result_reason text,
        response_status integer NOT NULL,
        response_body text NOT NULL,
        CONSTRAINT activation_request_bank_request_uq UNIQUE (bank_code, request_id)
      )`);
    await db.query(`CREATE INDEX activation_request_national_id_idx ON activation_request (national_id)`);
    await db.query(`
      CREATE TABLE outbox_event (
        id bigserial PRIMARY KEY,
        topic text NOT NULL,
        message_key text NOT NULL,
        payload text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
      )`);
    // The relay only ever reads the unpublished tail, in id order.
    await db.query(`CREATE INDEX outbox_event_unpublished_idx ON outbox_event (id) WHERE published_at IS NULL`);
  }

  async down(db: QueryRunner): Promise<void> {
    for (const table of ['outbox_event', 'activation_request', 'registration', 'bank_certificate', 'bank']) {
      await db.query(`DROP TABLE ${table}`);
    }
  }
}
