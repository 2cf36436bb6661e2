/**
 * `npm run simulate:atm`: plays an ATM switch of the development bank DEVB
 * (acquirer 999999) against a running gateway: signs on, publishes a few
 * registrations as the identity core, sends activations that produce each
 * field 39 code, a duplicate and a reversal, and prints every exchange
 * decoded (the PAN masked) with what was expected, what came back and PASS
 * or FAIL, then a one-line verdict. Exit code 0 when every answer was as
 * expected, 1 otherwise, 2 for a mistake on the command line.
 *
 *   npm start                  # in one terminal
 *   npm run simulate:atm       # in another
 */
import { Kafka, logLevel } from 'kafkajs';
import { luhnValid } from '../libs/identity';
import { buildOriginalDataElements, IsoFields, maskForLog, parseTlv } from '../libs/iso8583';
import { AtmAnswer, MacMode } from '../libs/iso8583/atm-switch-client';
import { developmentKafkaBrokers, publishRegistrations } from './identity-core';
import { defineTool, exitWith, readOptions } from './options';
import { Sent, SwitchLink } from './switch-link';
import { table, verdict } from './verdict';

const TOOL = defineTool({
  name: 'simulate:atm',
  summary: `Plays an ATM switch of the development bank DEVB against a running gateway:
signs on, publishes registrations as the identity core, sends activations that
produce each field 39 code, a duplicate and a reversal, and prints each
exchange decoded with what was expected, what came back and PASS or FAIL,
then a verdict.`,
  options: {},
  more: `Environment: ISO_HOST (127.0.0.1), ISO8583_PORT (8583), MAC_KEY (DEVB's
development key), ACQUIRER (999999); KAFKA_BROKERS / DATA_DIR as for
\`npm run simulate\`. The expectations are those of the development bank:
acquirer 999999 enabled for ATM, with MAC_KEY as its key.

Exit codes: 0 every answer as expected, 1 at least one not (the verdict names
them) or Kafka could not be reached, 2 a mistake on the command line.`,
});
// Read before anything else, so --help and mistakes never reach the gateway.
readOptions(TOOL);

const host = process.env.ISO_HOST ?? '127.0.0.1';
const port = Number(process.env.ISO8583_PORT ?? 8583);
const macKey = Buffer.from(process.env.MAC_KEY ?? '0123456789ABCDEFFEDCBA9876543210', 'hex');
const acquirer = process.env.ACQUIRER ?? '999999';
const PAN = '4111111111111111';

const randomNationalId = (kind = '1') => {
  const body = kind + String(Math.floor(Math.random() * 1e8)).padStart(8, '0');
  for (let d = 0; d <= 9; d++) if (luhnValid(body + d)) return body + d;
  throw new Error('unreachable');
};
const randomMobile = () => `+9665${String(Math.floor(Math.random() * 1e8)).padStart(8, '0')}`;

let stan = Math.floor(Math.random() * 900000);
const nextStan = () => String(++stan % 1_000_000).padStart(6, '0');
function activation(nationalId: string, mobile: string, overrides: IsoFields = {}): IsoFields {
  const s = nextStan();
  const now = new Date();
  const mmdd = `${String(now.getUTCMonth() + 1).padStart(2, '0')}${String(now.getUTCDate()).padStart(2, '0')}`;
  const hhmmss = now.toISOString().slice(11, 19).replace(/:/g, '');
  return { 0: '0200', 2: PAN, 3: '910000', 7: mmdd + hhmmss, 11: s, 12: hhmmss, 13: mmdd, 32: acquirer, 37: `SIM${s}000`, 41: 'SIMATM01', 48: `NI010${nationalId}MN${String(mobile.length).padStart(3, '0')}${mobile}`, ...overrides };
}

/** What an exchange must get back (spec 4): the MTI, field 39, and whether the answer carries a MAC that verifies. */
interface Expected {
  mti: string;
  code: string;
  /** 'verified' for an answer to a message whose MAC verified; 'none' for 0810s and answers to messages that proved nothing. */
  mac: 'verified' | 'none';
  /** Field 38: set (an accepted 0200), or this exact value (the original's, on a duplicate). */
  authorization?: 'set' | string;
}

function describeExpected(e: Expected): string {
  const authorization = e.authorization === undefined ? '' : e.authorization === 'set' ? ', 38 set' : `, 38 = ${e.authorization} (the original's)`;
  return `${e.mti} 39 = ${e.code}${authorization}, ${e.mac === 'verified' ? 'MAC verified' : 'no MAC'}`;
}

function macOf(answer: AtmAnswer): string {
  if (answer.macValid === null) return 'no MAC';
  return answer.macValid ? 'MAC verified' : 'MAC WRONG';
}

function describeAnswer(sent: Sent): string {
  if (!sent.ok) return `no answer: ${sent.error}`;
  const f = sent.answer.fields;
  return `${f[0]} 39 = ${f[39] ?? '-'}${f[38] ? `, 38 = ${f[38]}` : ''}, ${macOf(sent.answer)}`;
}

/** What is wrong with an answer, or nothing. */
function mismatches(expected: Expected, sent: Sent): string[] {
  if (!sent.ok) return ['no answer'];
  const f = sent.answer.fields;
  const problems: string[] = [];
  if (f[0] !== expected.mti || f[39] !== expected.code) problems.push(`got ${f[0]} 39 = ${f[39] ?? '-'}`);
  if (expected.authorization === 'set' && !(f[38] && parseTlv(f[48] ?? '').has('AI'))) problems.push('no 38 or 48 AI');
  if (expected.authorization !== undefined && expected.authorization !== 'set' && f[38] !== expected.authorization) problems.push(`38 = ${f[38] ?? '-'}, not the original's`);
  if (expected.mac === 'verified' && sent.answer.macValid !== true) problems.push(macOf(sent.answer));
  if (expected.mac === 'none' && sent.answer.macValid !== null) problems.push('a MAC where none belongs');
  return problems;
}

function show(title: string, request: IsoFields, sent: Sent, expected: Expected, problems: string[]): void {
  const line = (fields: Record<string, string>) =>
    Object.entries(fields)
      .map(([k, v]) => `${k.padStart(3)}: ${v}`)
      .join('\n      ');
  const answer = sent.ok ? `${sent.answer.fields[0]}  (${macOf(sent.answer)})\n      ${line(maskForLog(sent.answer.fields))}` : `no answer: ${sent.error}`;
  process.stdout.write(
    `\n== ${title}\n  -> ${request[0]}\n      ${line(maskForLog(request))}\n  <- ${answer}\n` +
      `  expected ${describeExpected(expected)}: ${problems.length ? `FAIL (${problems.join('; ')})` : 'PASS'}\n`,
  );
}

async function main(): Promise<number> {
  const link = new SwitchLink({ host, port, macKey, timeoutMs: 15_000 });
  const results: { title: string; expected: Expected; sent: Sent; problems: string[] }[] = [];
  const exchange = async (title: string, request: IsoFields, expected: Expected, mac: MacMode = 'valid') => {
    const sent = await link.send(request, mac);
    const problems = mismatches(expected, sent);
    show(title, request, sent, expected, problems);
    results.push({ title, expected, sent, problems });
    return sent;
  };
  const network = (code: string): IsoFields => ({ 0: '0800', 7: activation('', '')[7], 11: nextStan(), 70: code });
  const decided = (code: string): Expected => ({ mti: '0210', code, mac: 'verified' });
  try {
    await exchange('sign-on', network('001'), { mti: '0810', code: '00', mac: 'none' });

    const people = {
      pending: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'PENDING_ACTIVATION' },
      suspended: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'SUSPENDED' },
      active: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'ACTIVE' },
      mismatch: { nationalId: randomNationalId(), mobile: randomMobile(), status: 'PENDING_ACTIVATION' },
      sharing: { nationalId: randomNationalId('2'), mobile: randomMobile(), status: 'PENDING_ACTIVATION' },
    };
    const holder = { nationalId: randomNationalId(), mobile: people.sharing.mobile, status: 'ACTIVE' };
    process.stdout.write(`\nidentity core: publishing registrations ...\n`);
    const kafka = new Kafka({ clientId: 'simulator-atm', brokers: developmentKafkaBrokers(), logLevel: logLevel.NOTHING });
    await publishRegistrations(kafka, [...Object.values(people), holder], 'urn:absher:identity-core:simulator');

    const local = (e164: string) => `0${e164.slice(4)}`;
    const accepted = activation(people.pending.nationalId, local(people.pending.mobile));
    const first = await exchange('00 accepted', accepted, { ...decided('00'), authorization: 'set' });
    await exchange('25 not registered', activation(randomNationalId(), randomMobile()), decided('25'));
    await exchange('N1 mobile mismatch', activation(people.mismatch.nationalId, randomMobile()), decided('N1'));
    await exchange('N2 already active', activation(people.active.nationalId, people.active.mobile), decided('N2'));
    await exchange('N3 mobile in use', activation(people.sharing.nationalId, people.sharing.mobile), decided('N3'));
    await exchange('N4 account suspended', activation(people.suspended.nationalId, people.suspended.mobile), decided('N4'));
    // No bank, so no key: the 58 cannot carry a MAC.
    await exchange('58 unknown acquirer', activation(randomNationalId(), randomMobile(), { 32: '123' }), { mti: '0210', code: '58', mac: 'none' });
    await exchange('30 national ID with a wrong check digit', activation('1000000007', '0512345678'), decided('30'));
    await exchange('12 unsupported processing code', activation(randomNationalId(), randomMobile(), { 3: '000000' }), decided('12'));
    await exchange('63 wrong MAC (answered without a MAC)', activation(randomNationalId(), randomMobile()), { mti: '0210', code: '63', mac: 'none' }, 'wrong');
    const original = first.ok ? first.answer.fields[38] : undefined;
    await exchange('duplicate of the accepted request: the original 0210', accepted, { ...decided('00'), authorization: original ?? 'set' });
    const originalData = buildOriginalDataElements({ mti: '0200', stan: accepted[11], transmittedAt: accepted[7], acquirerId: acquirer });
    await exchange(
      'reversal advice for the accepted activation',
      { 0: '0420', 2: PAN, 3: '910000', 7: accepted[7], 11: nextStan(), 32: acquirer, 37: accepted[37], 41: accepted[41], 90: originalData },
      { mti: '0430', code: '00', mac: 'verified' },
    );
    await exchange('sign-off', network('002'), { mti: '0810', code: '00', mac: 'none' });
  } finally {
    await link.close();
  }

  const rows = results.map((r, i) => [String(i + 1), r.title, describeExpected(r.expected), describeAnswer(r.sent), r.problems.length ? 'FAIL' : 'PASS']);
  process.stdout.write(`\nacquirer ${acquirer} -> ${host}:${port}\n\n${table([['#', 'exchange', 'expected', 'answer', 'result'], ...rows])}\n`);
  const failed = results.flatMap((r, i) => (r.problems.length ? [`#${i + 1}`] : []));
  return verdict(TOOL.name, results.length, failed.length, failed);
}

exitWith(TOOL, main());
