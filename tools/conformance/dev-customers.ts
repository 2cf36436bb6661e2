/**
 * `npm run conformance:dev-customers`: for a development or test gateway
 * only. Plays the identity core: publishes one fresh registration for each
 * role of the conformance kit's customers file (plus the second holder of the
 * shared mobile that MOBILE_IN_USE needs) to absher.registrations.v1, waits
 * until the gateway has consumed them, and writes the customers file.
 *
 *   npm start                                   # terminal 1
 *   npm run conformance:dev-customers -- --out customers.json
 *   npm run conformance -- --bank DEVB ... --customers customers.json
 *
 * On a shared test environment the identity core owns that topic: there the
 * operator registers test customers through it and writes the file by hand.
 *
 * Environment: KAFKA_BROKERS, or the development broker's address the
 * gateway wrote to DATA_DIR/kafka-brokers (DATA_DIR defaults to .data).
 */
import { writeFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { TOPICS } from '../../src/kafka/topics';
import { developmentKafkaBrokers, publishRegistrations } from '../identity-core';
import { CustomerRole, freshMobile, freshNationalId, TestCustomer } from './customers';

interface Registration extends TestCustomer {
  status: 'PENDING_ACTIVATION' | 'ACTIVE' | 'SUSPENDED';
}

async function main(): Promise<void> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { out: { type: 'string' }, help: { type: 'boolean' } }, strict: true });
  if (values.help) {
    process.stdout.write('npm run conformance:dev-customers -- [--out FILE]\n\nDevelopment gateways only: registers fresh test customers as the identity core would\nand writes the --customers file of `npm run conformance` (default ./customers.json).\n');
    return;
  }
  const cwd = process.env.INIT_CWD ?? process.cwd();
  const out = values.out ? (isAbsolute(values.out) ? values.out : resolve(cwd, values.out)) : resolve(cwd, 'customers.json');
  const shared = freshMobile();
  const customers: Record<Exclude<CustomerRole, 'notRegistered'>, Registration> = {
    accepted: { nationalId: freshNationalId(), mobile: freshMobile(), status: 'PENDING_ACTIVATION' },
    mobileMismatch: { nationalId: freshNationalId(), mobile: freshMobile(), status: 'PENDING_ACTIVATION' },
    alreadyActive: { nationalId: freshNationalId(), mobile: freshMobile(), status: 'ACTIVE' },
    suspended: { nationalId: freshNationalId(), mobile: freshMobile(), status: 'SUSPENDED' },
    mobileInUse: { nationalId: freshNationalId('2'), mobile: shared, status: 'PENDING_ACTIVATION' },
  };
  const holder: Registration = { nationalId: freshNationalId(), mobile: shared, status: 'ACTIVE' };
  const kafka = new Kafka({ clientId: 'conformance-dev-customers', brokers: developmentKafkaBrokers(), logLevel: logLevel.NOTHING });
  await publishRegistrations(kafka, [...Object.values(customers), holder], 'urn:absher:identity-core:conformance-dev-customers');
  const file = Object.fromEntries(Object.entries(customers).map(([role, r]) => [role, { nationalId: r.nationalId, mobile: r.mobile }]));
  writeFileSync(out, `${JSON.stringify(file, null, 2)}\n`);
  process.stdout.write(`registered ${Object.keys(customers).length + 1} test registrations on ${TOPICS.registrations}; wrote ${out}\n`);
}

main().catch((error) => {
  process.stderr.write(`conformance:dev-customers: ${(error as Error).message}\n`);
  process.exit(1);
});
