/**
 * `npm run simulate:atm`: plays an ATM switch of the development bank DEVB
 * (acquirer 999999) against a running gateway: signs on, publishes a few
 * registrations as the identity core, sends activations that produce each
 * field 39 code, a duplicate and a reversal, and prints every exchange
 * decoded, the PAN masked.
 *
 *   npm start                  # in one terminal
 *   npm run simulate:atm       # in another
 *
 * Environment: ISO_HOST (127.0.0.1), ISO8583_PORT (8583), MAC_KEY (DEVB's
 * development key), ACQUIRER (999999), KAFKA_BROKERS / DATA_DIR as for
 * `npm run simulate`.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { luhnValid } from '../libs/identity';
import { AtmAnswer, AtmSwitchClient, answerMacProblem, IsoFields, MacMode, maskForLog } from '../libs/iso8583';
import { projectRoot } from '../src/common/project-root';
import { EVENT_TYPES, TOPICS } from '../src/kafka/topics';
import { REGISTRATIONS_GROUP } from '../src/registry/registrations-consumer';

const root = projectRoot();
const host = process.env.ISO_HOST ?? '127.0.0.1';
const port = Number(process.env.ISO8583_PORT ?? 8583);
const macKey = Buffer.from(process.env.MAC_KEY ?? '0123456789ABCDEFFEDCBA9876543210', 'hex');
const acquirer = process.env.ACQUIRER ?? '999999';
const dataDir = process.env.DATA_DIR ?? join(root, '.data');
const PAN = '4111111111111111';

const randomNationalId = (kind = '1') => {
  const body = kind + String(Math.floor(Math.random() * 1e8)).padStart(8, '0');
  for (let d = 0; d <= 9; d++) if (luhnValid(body + d)) return body + d;
  throw new Error('unreachable');
};
const randomMobile = () => `+9665${String(Math.floor(Math.random() * 1e8)).padStart(8, '0')}`;

async function register(people: { nationalId: string; mobile: string; status: string }[]): Promise<void> {
  const brokersFile = join(dataDir, 'kafka-brokers');
  const brokers = process.env.KAFKA_BROKERS?.split(',') ?? (existsSync(brokersFile) ? readFileSync(brokersFile, 'utf8').trim().split(',') : null);
  if (!brokers) throw new Error(`no KAFKA_BROKERS and no ${brokersFile}: start the gateway first (npm start)`);
  const kafka = new Kafka({ clientId: 'simulator-atm', brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  const version = Date.now();
  const sent = await producer.send({
    topic: TOPICS.registrations,
    messages: people.map((p) => ({
      key: p.nationalId,
      value: JSON.stringify({ specversion: '1.0', id: randomUUID(), source: 'urn:absher:identity-core:simulator', type: EVENT_TYPES.registrationUpdated, time: new Date().toISOString(), subject: p.nationalId, datacontenttype: 'application/json', data: { ...p, version } }),
    })),
  });
  await producer.disconnect();
  const admin = kafka.admin();
  await admin.connect();
  for (const deadline = Date.now() + 30_000; ; ) {
    const [offsets] = await admin.fetchOffsets({ groupId: REGISTRATIONS_GROUP, topics: [TOPICS.registrations] });
    if (sent.every((r) => BigInt(offsets?.partitions.find((p) => p.partition === r.partition)?.offset ?? '-1') > BigInt(r.baseOffset ?? '0'))) break;
    if (Date.now() > deadline) throw new Error('the gateway did not consume the registrations within 30 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await admin.disconnect();
}

let stan = Math.floor(Math.random() * 900000);
function activation(nationalId: string, mobile: string, overrides: IsoFields = {}): IsoFields {
  const s = String(++stan % 1_000_000).padStart(6, '0');
  const now = new Date();
  const mmdd = `${String(now.getUTCMonth() + 1).padStart(2, '0')}${String(now.getUTCDate()).padStart(2, '0')}`;
  const hhmmss = now.toISOString().slice(11, 19).replace(/:/g, '');
  return { 0: '0200', 2: PAN, 3: '910000', 7: mmdd + hhmmss, 11: s, 12: hhmmss, 13: mmdd, 32: acquirer, 37: `SIM${s}000`, 41: 'SIMATM01', 48: `NI010${nationalId}MN${String(mobile.length).padStart(3, '0')}${mobile}`, ...overrides };
}

function show(title: string, request: IsoFields, answer: AtmAnswer): void {
  const line = (fields: Record<string, string>) =>
    Object.entries(fields)
      .map(([k, v]) => `${k.padStart(3)}: ${v}`)
      .join('\n      ');
  process.stdout.write(
    `\n== ${title}\n  -> ${request[0]}\n      ${line(maskForLog(request))}\n  <- ${answer.fields[0]}  (${macNote(answer)})\n      ${line(maskForLog(answer.fields))}\n`,
  );
}

/** The answer's MAC as spec 4.3 has it: verified, or absent on a 63 (which answers a message that proved nothing). */
function macNote(answer: AtmAnswer): string {
  if (answer.macValid === null) return answer.fields[39] === '63' ? 'no MAC, as a 63 must be' : 'MAC absent';
  if (!answer.macExpected) return `MAC present: WRONG, ${answerMacProblem(answer)}`;
  return answer.macValid ? 'MAC verified' : 'MAC WRONG';
}

async function main(): Promise<void> {
  const atm = await AtmSwitchClient.connect(host, port, macKey);
  const send = async (title: string, request: IsoFields, mac: MacMode = 'valid') => {
    const answer = await atm.request(request, mac);
    show(title, request, answer);
    return answer;
  };
  const signOn = { 0: '0800', 7: activation('', '')[7], 11: String(++stan % 1_000_000).padStart(6, '0'), 70: '001' };
  show('sign-on', signOn, await atm.request(signOn));

  const people = {
    pending: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'PENDING_ACTIVATION' },
    suspended: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'SUSPENDED' },
    active: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'ACTIVE' },
    mismatch: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'PENDING_ACTIVATION' },
    sharing: { nationalId: randomNationalId('2'), mobile: randomMobile(), status: 'PENDING_ACTIVATION' },
  };
  const holder = { nationalId: randomNationalId(), mobile: people.sharing.mobile, status: 'ACTIVE' };
  process.stdout.write(`\nidentity core: publishing registrations ...\n`);
  await register([...Object.values(people), holder]);

  const local = (e164: string) => `0${e164.slice(4)}`;
  const accepted = activation(people.pending.nationalId, local(people.pending.mobile));
  await send('00 accepted', accepted);
  await send('25 not registered', activation(randomNationalId(), randomMobile()));
  await send('N1 mobile mismatch', activation(people.mismatch.nationalId, randomMobile()));
  await send('N2 already active', activation(people.active.nationalId, people.active.mobile));
  await send('N3 mobile in use', activation(people.sharing.nationalId, people.sharing.mobile));
  await send('N4 account suspended', activation(people.suspended.nationalId, people.suspended.mobile));
  await send('58 unknown acquirer', activation(randomNationalId(), randomMobile(), { 32: '123' }));
  await send('30 national ID with a wrong check digit', activation('1000000007', '0512345678'));
  await send('12 unsupported processing code', activation(randomNationalId(), randomMobile(), { 3: '000000' }));
  await send('63 wrong MAC (answered without a MAC)', activation(randomNationalId(), randomMobile()), 'wrong');
  await send('duplicate of the accepted request: the original 0210', accepted);
  const original = `0200${accepted[11]}${accepted[7]}${acquirer.padStart(11, '0')}${'0'.repeat(11)}`;
  await send('reversal advice for the accepted activation', { 0: '0420', 2: PAN, 3: '910000', 7: accepted[7], 11: String(++stan % 1_000_000).padStart(6, '0'), 32: acquirer, 37: accepted[37], 41: accepted[41], 90: original });
  const signOff = { ...signOn, 11: String(++stan % 1_000_000).padStart(6, '0'), 70: '002' };
  show('sign-off', signOff, await atm.request(signOff));
  await atm.close();
}

main().catch((error) => {
  process.stderr.write(`simulate:atm: ${(error as Error).message}\n`);
  process.exit(1);
});
