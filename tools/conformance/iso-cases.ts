import { randomInt } from 'node:crypto';
import { maskMobile, maskNationalId } from '../../libs/identity';
import { buildOriginalDataElements, buildTlv, echoedFields, IsoFields, parseTlv } from '../../libs/iso8583';
import { AtmAnswer, answerMacProblem } from '../../libs/iso8583/atm-switch-client';
import { Sent, SwitchLink } from '../switch-link';
import { anotherMobile, CustomerRole, freshMobile, freshNationalId, localSpelling, TestCustomer, TestCustomers } from './customers';
import { IsoOptions } from './options';
import { CaseOutcome } from './report';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface IsoTarget extends IsoOptions {
  timeoutMs: number;
  /** Three capital letters in every RRN of this run, so a re-run is never taken for a duplicate. */
  runTag: string;
}

export async function runIsoCases(target: IsoTarget, customers: TestCustomers, customersGiven: boolean): Promise<CaseOutcome[]> {
  const link = new SwitchLink(target);
  const outcomes: CaseOutcome[] = [];
  let stan = randomInt(1, 900_000);
  const nextStan = () => String(++stan % 1_000_000).padStart(6, '0');
  const clock = () => {
    const now = new Date();
    const mmdd = `${String(now.getUTCMonth() + 1).padStart(2, '0')}${String(now.getUTCDate()).padStart(2, '0')}`;
    const hhmmss = now.toISOString().slice(11, 19).replace(/:/g, '');
    return { mmdd, hhmmss };
  };
  const activation = (customer: TestCustomer, mobile = localSpelling(customer.mobile), nationalId = customer.nationalId): IsoFields => {
    const s = nextStan();
    const { mmdd, hhmmss } = clock();
    return {
      0: '0200',
      2: target.pan,
      3: '910000',
      7: mmdd + hhmmss,
      11: s,
      12: hhmmss,
      13: mmdd,
      32: target.acquirer,
      37: `CNF${target.runTag}${s}`,
      41: target.terminal,
      48: buildTlv([
        ['NI', nationalId],
        ['MN', mobile],
      ]),
    };
  };
  const network = (code: string): IsoFields => {
    const { mmdd, hhmmss } = clock();
    return { 0: '0800', 7: mmdd + hhmmss, 11: nextStan(), 32: target.acquirer, 70: code };
  };
  const reference = (fields: IsoFields) => `STAN ${fields[11]}, RRN ${fields[37]}`;
  const who = (customer: TestCustomer, mobile = customer.mobile) => `${maskNationalId(customer.nationalId)}, ${maskMobile(mobile)}`;

  try {
    const signOn = network('001');
    outcomes.push(judgeNetwork(target, 'I1', '0800 sign-on (70 = 001)', signOn, await link.send(signOn)));

    const unregistered = customers.notRegistered ?? { nationalId: freshNationalId(), mobile: freshMobile() };
    const first = activation(unregistered);
    const firstSent = await link.send(first);
    const firstOutcome = judge0210(target, 'I2', '0200 for a national ID with no registration', first, who(unregistered), '25', firstSent);
    outcomes.push(firstOutcome);

    const outcomeCases: [string, CustomerRole, string, string, boolean][] = [
      ['I3', 'accepted', '0200, pending registration, same mobile', '00', false],
      ['I4', 'mobileMismatch', '0200, the bank holds another mobile', 'N1', true],
      ['I5', 'alreadyActive', '0200, registration already ACTIVE', 'N2', false],
      ['I6', 'suspended', '0200, registration SUSPENDED', 'N4', false],
      ['I7', 'mobileInUse', '0200, mobile held by another registration', 'N3', false],
    ];
    let accepted: { request: IsoFields; sent: Sent; outcome: CaseOutcome } | null = null;
    for (const [id, role, title, code, otherMobile] of outcomeCases) {
      const customer = customers[role];
      if (!customer) {
        const why = customersGiven ? `no "${role}" customer in --customers` : 'no test customer given (--customers)';
        outcomes.push({ id, title, reference: '', expected: `0210 39 = ${code}`, actual: 'not run', result: 'SKIPPED', problems: [why] });
        continue;
      }
      const mobile = otherMobile ? anotherMobile(customer.mobile) : customer.mobile;
      const request = activation(customer, localSpelling(mobile));
      const sent = await link.send(request);
      const outcome = judge0210(target, id, title, request, who(customer, mobile), code, sent);
      outcomes.push(outcome);
      if (role === 'accepted') accepted = { request, sent, outcome };
    }

    // Spec 4.4: the same 7, 11, 37 and 41 again is answered with the original 0210, byte for byte.
    const base = accepted ?? { request: first, sent: firstSent, outcome: firstOutcome };
    const baseName = base.outcome.id;
    /** A duplicate or reversal of a 0200 that was not answered right proves nothing: such a case fails with its cause named. */
    const dependent = (outcome: CaseOutcome): CaseOutcome =>
      base.outcome.result === 'PASS' ? outcome : { ...outcome, result: 'FAIL', problems: [...outcome.problems, `${baseName} failed, so this cannot be checked`] };
    const again = await link.send(base.request);
    const duplicate = judge(target, 'I8', `the ${baseName} 0200 again (duplicate)`, reference(base.request), `the ${baseName} 0210 again, byte for byte`, again, (answer) =>
      base.sent.ok && answer.raw.equals(base.sent.answer.raw) ? [] : [`not the ${baseName} 0210`],
    );
    if (again.ok && base.sent.ok) duplicate.actual += again.answer.raw.equals(base.sent.answer.raw) ? `; the same bytes as ${baseName}'s` : `; not the bytes of ${baseName}'s`;
    outcomes.push(dependent(duplicate));

    const badId = activation({ nationalId: '1000000007', mobile: freshMobile() });
    outcomes.push(judge0210(target, 'I9', '0200 with a national ID failing the check digit', badId, '1000000007 (check digit wrong)', '30', await link.send(badId)));

    const wrongMacFor = { nationalId: freshNationalId(), mobile: freshMobile() };
    const wrongMac = activation(wrongMacFor);
    // Spec 4.3: the 63 carries no MAC (it answers a message that proved nothing); the keys are shown to agree by I2-I9.
    outcomes.push(judge0210(target, 'I10', '0200 with a wrong MAC', wrongMac, who(wrongMacFor), '63', await link.send(wrongMac, 'wrong')));

    const { mmdd, hhmmss } = clock();
    const advice: IsoFields = {
      0: '0420',
      2: target.pan,
      3: '910000',
      7: mmdd + hhmmss,
      11: nextStan(),
      32: target.acquirer,
      37: base.request[37],
      41: base.request[41],
      90: buildOriginalDataElements({ mti: '0200', stan: base.request[11], transmittedAt: base.request[7], acquirerId: target.acquirer }),
    };
    const reversal = judge(target, 'I11', `0420 reversal advice of the ${baseName} activation`, reference(advice), '0430 39 = 00, MAC verified', await link.send(advice), (answer) => {
      const problems: string[] = [];
      if (answer.fields[0] !== '0430') problems.push(`MTI ${answer.fields[0]}`);
      if (answer.fields[39] !== '00') problems.push(`39 = ${answer.fields[39] ?? 'none'}`);
      problems.push(...macProblems(answer));
      return problems;
    });
    outcomes.push(dependent(reversal));

    const echo = network('301');
    outcomes.push(judgeNetwork(target, 'I12', '0800 echo (70 = 301)', echo, await link.send(echo)));
    const signOff = network('002');
    outcomes.push(judgeNetwork(target, 'I13', '0800 sign-off (70 = 002)', signOff, await link.send(signOff)));
  } finally {
    await link.close();
  }
  return outcomes;
}

function describe(answer: AtmAnswer): string {
  const f = answer.fields;
  const parts = [`${f[0]} 39 = ${f[39] ?? 'none'}`];
  if (f[38]) parts.push(`38 = ${f[38]}`);
  if (f[48]) {
    let tags: string;
    try {
      tags = [...parseTlv(f[48]).keys()].join(', ');
    } catch {
      tags = 'unreadable';
    }
    parts.push(`48 tags ${tags}`);
  }
  if (f[0] !== '0810') parts.push(answer.macValid === null ? 'no MAC' : answer.macValid ? 'MAC verified' : 'MAC does not verify');
  return parts.join(', ');
}

/** Field 39 codes a bank can act on when it gets them where it did not expect them. */
function hintFor(target: IsoTarget, answer: AtmAnswer, expectedCode: string): string | undefined {
  const code = answer.fields[39];
  if (code === '63' && expectedCode !== '63') return `the gateway refused the MAC: is --mac-key the key registered for acquirer ${target.acquirer}? Compare its KCV (in the header) with the operator's`;
  if (answer.macValid === false) return `the gateway's answers carry a MAC that does not verify under --mac-key: the gateway holds another key for acquirer ${target.acquirer}; compare KCVs with the operator`;
  if (code === '58') return `acquirer ${target.acquirer} is unknown to the gateway, or the bank is not enabled for the ATM channel`;
  if (code === '91') return 'the gateway\'s store was unavailable or the bank\'s rate limit was reached: run again later';
  return undefined;
}

/** Spec 4.3: a valid MAC under --mac-key, except on a 63, which must have none (its 39 is judged on its own). */
function macProblems(answer: AtmAnswer): string[] {
  const problem = answerMacProblem(answer);
  if (!problem) return [];
  return [answer.macValid === false ? "the answer's MAC does not verify under --mac-key" : problem];
}

function judge(target: IsoTarget, id: string, title: string, reference: string, expected: string, sent: Sent, check: (answer: AtmAnswer) => string[], expectedCode = '00'): CaseOutcome {
  if (!sent.ok) {
    return {
      id,
      title,
      reference,
      expected,
      actual: `no answer: ${sent.error}`,
      result: 'FAIL',
      problems: ['no answer from the gateway'],
      hint: `the ISO 8583 listener did not answer at ${target.host}:${target.port}: check the address, the port and the network path`,
    };
  }
  const problems = check(sent.answer);
  return {
    id,
    title,
    reference,
    expected,
    actual: describe(sent.answer),
    result: problems.length ? 'FAIL' : 'PASS',
    problems,
    hint: problems.length ? hintFor(target, sent.answer, expectedCode) : undefined,
  };
}

/** A 0210 (spec 4.2): the expected 39, the echoed fields, 38 and 48 AI only when accepted, a MAC under the bank's key (none on a 63). */
function judge0210(target: IsoTarget, id: string, title: string, request: IsoFields, customer: string, code: string, sent: Sent): CaseOutcome {
  const expected = `0210 39 = ${code}${code === '00' ? ', 38 and 48 AI (activation id)' : ''}, request fields echoed, ${code === '63' ? 'no MAC' : 'MAC verified'}`;
  const reference = `STAN ${request[11]}, RRN ${request[37]} (${customer})`;
  return judge(
    target,
    id,
    title,
    reference,
    expected,
    sent,
    (answer) => {
      const f = answer.fields;
      const problems: string[] = [];
      if (f[0] !== '0210') problems.push(`MTI ${f[0]}`);
      if (f[39] !== code) problems.push(`39 = ${f[39] ?? 'none'}, expected ${code}`);
      const notEchoed = echoedFields('0210').filter((field) => f[field] !== request[field]);
      if (notEchoed.length) problems.push(`field${notEchoed.length > 1 ? 's' : ''} ${notEchoed.join(', ')} not echoed`);
      if (code === '00') {
        if (!/^[A-Za-z0-9]{6}$/.test(f[38] ?? '')) problems.push('no 6-character field 38');
        let activationId: string | undefined;
        try {
          activationId = f[48] ? parseTlv(f[48]).get('AI') : undefined;
        } catch {
          activationId = undefined;
        }
        if (!activationId || !UUID.test(activationId)) problems.push('no activation id (48 AI)');
      } else if (f[48]) {
        problems.push('field 48 on a 0210 that is not an acceptance');
      }
      problems.push(...macProblems(answer));
      return problems;
    },
    code,
  );
}

function judgeNetwork(target: IsoTarget, id: string, title: string, request: IsoFields, sent: Sent): CaseOutcome {
  return judge(target, id, title, `STAN ${request[11]}`, '0810 39 = 00, 11 and 70 echoed', sent, (answer) => {
    const f = answer.fields;
    const problems: string[] = [];
    if (f[0] !== '0810') problems.push(`MTI ${f[0]}`);
    if (f[39] !== '00') problems.push(`39 = ${f[39] ?? 'none'}`);
    if (f[11] !== request[11] || f[70] !== request[70]) problems.push('11 or 70 not echoed');
    return problems;
  });
}
