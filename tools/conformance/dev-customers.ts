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
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { projectRoot } from '../../src/common/project-root';
import { EVENT_TYPES, TOPICS } from '../../src/kafka/topics';
import { REGISTRATIONS_GROUP } from '../../src/registry/registrations-consumer';
import { CustomerRole, freshMobile, freshNationalId, TestCustomer } from './customers';

interface Registration extends TestCustomer {
  status: 'PENDING_ACTIVATION' | 'ACTIVE' | 'SUSPENDED';
}

function kafkaBrokers(): string[] {
  if (process.env.KAFKA_BROKERS) return process.env.KAFKA_BROKERS.split(',');
  const file = join(process.env.DATA_DIR ?? join(projectRoot(), '.data'), 'kafka-brokers');
  if (!existsSync(file)) throw new Error(`no KAFKA_BROKERS and no ${file}: start the gateway first (npm start), or set KAFKA_BROKERS`);
  return readFileSync(file, 'utf8').trim().split(',');
}

async function publish(registrations: Registration[]): Promise<void> {
  const kafka = new Kafka({ clientId: 'conformance-dev-customers', brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  // Versions only have to rise per national ID, and every ID here is fresh.
  const version = Date.now();
  const sent = await producer.send({
    topic: TOPICS.registrations,
    messages: registrations.map((r) => ({
      key: r.nationalId,
      value: JSON.stringify({
        specversion: '1.0',
        id: randomUUID(),
        source: 'urn:absher:identity-core:conformance-dev-customers',
        type: EVENT_TYPES.registrationUpdated,
        time: new Date().toISOString(),
        subject: r.nationalId,
        datacontenttype: 'application/json',
        data: { ...r, version },
      }),
    })),
  });
  await producer.disconnect();
  // The file is only useful once the gateway's read model holds these: wait for its consumer to commit past them.
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (const deadline = Date.now() + 30_000; ; ) {
      const [offsets] = await admin.fetchOffsets({ groupId: REGISTRATIONS_GROUP, topics: [TOPICS.registrations] });
      const consumed = sent.every((r) => BigInt(offsets?.partitions.find((p) => p.partition === r.partition)?.offset ?? '-1') > BigInt(r.baseOffset ?? '0'));
      if (consumed) return;
      if (Date.now() > deadline) throw new Error('the gateway did not consume the registrations within 30 s: is it running against this broker?');
      await new Promise((done) => setTimeout(done, 100));
    }
  } finally {
    await admin.disconnect();
  }
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
  await publish([...Object.values(customers), holder]);
  const file = Object.fromEntries(Object.entries(customers).map(([role, r]) => [role, { nationalId: r.nationalId, mobile: r.mobile }]));
  writeFileSync(out, `${JSON.stringify(file, null, 2)}\n`);
  process.stdout.write(`registered ${Object.keys(customers).length + 1} test registrations on ${TOPICS.registrations}; wrote ${out}\n`);
}

main().catch((error) => {
  process.stderr.write(`conformance:dev-customers: ${(error as Error).message}\n`);
  process.exit(1);
});
