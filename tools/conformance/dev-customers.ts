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
import { Kafka, logLevel } from 'kafkajs';
import { TOPICS } from '../../src/kafka/topics';
import { developmentKafkaBrokers, publishRegistrations } from '../identity-core';
import { defineTool, fromWorkingDirectory, runTool } from '../options';
import { CustomerRole, freshMobile, freshNationalId, TestCustomer } from './customers';

interface Registration extends TestCustomer {
  status: 'PENDING_ACTIVATION' | 'ACTIVE' | 'SUSPENDED';
}

const TOOL = defineTool({
  name: 'conformance:dev-customers',
  summary:
    'Development gateways only: registers fresh test customers as the identity core would\n' +
    'and writes the --customers file of `npm run conformance`.',
  options: {
    out: { type: 'string', value: 'FILE', default: 'customers.json', help: 'where to write the file, relative to the directory npm was run in' },
  },
  more: 'Environment: KAFKA_BROKERS, or the development broker\'s address the gateway wrote to DATA_DIR/kafka-brokers (DATA_DIR defaults to .data).',
});

async function main(outFile: string): Promise<number> {
  const out = fromWorkingDirectory(outFile);
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
  return 0;
}

runTool(TOOL, (values) => main(values.out));
