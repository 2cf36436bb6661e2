import { IsoFields } from '../../libs/iso8583';
import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { TOPICS } from '../../src/kafka/topics';
import { expectEventContract } from '../support/contracts';
import { newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/** Issue 4, acceptance 2: the ops topic after mixed traffic, counted against what was sent. */
let env: TestEnvironment;
let reader: TopicReader;

beforeAll(async () => {
  env = await TestEnvironment.start();
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.ops]);
});

afterAll(async () => {
  await reader?.stop();
  await env?.stop();
});

it('one request-handled per handled request on both channels, summaries that add up, no personal data', async () => {
  const people = Array.from({ length: 5 }, () => ({ nationalId: newNationalId(), mobile: newMobile() }));
  for (const person of people.slice(0, 4)) await env.register(person.nationalId, person.mobile, 'PENDING_ACTIVATION');
  const json = (requestId: string, body: Record<string, unknown>, bank = env.pki.tsta.es256, headers?: Record<string, string>) => env.send(bank, { requestId, body, headers });
  // Signed JSON: 3 accepted, 2 rejected, 1 replay, 3 errors.
  for (const [i, person] of people.slice(0, 3).entries()) expect((await json(`ops-acc-${i}`, { ...person, channel: 'INTERNET_BANKING' })).json.status).toBe('ACCEPTED');
  expect((await json('ops-rej-1', { nationalId: people[4].nationalId, mobile: people[4].mobile, channel: 'INTERNET_BANKING' })).json.reason).toBe('NOT_REGISTERED');
  expect((await json('ops-rej-2', { nationalId: people[3].nationalId, mobile: newMobile(), channel: 'PHONE_BANKING' })).json.reason).toBe('MOBILE_MISMATCH');
  expect((await json('ops-acc-0', { ...people[0], channel: 'INTERNET_BANKING' })).headers['idempotent-replayed']).toBe('true');
  expect((await json('ops-err-1', { nationalId: people[3].nationalId, mobile: '0112345678', channel: 'INTERNET_BANKING' })).json.code).toBe('INVALID_MOBILE');
  expect((await json('ops-err-2', { ...people[3], channel: 'INTERNET_BANKING' }, env.pki.tsta.es256, { 'x-jws-signature': 'garbage' })).json.code).toBe('SIGNATURE_INVALID');
  expect((await json('ops-err-3', { ...people[3], channel: 'INTERNET_BANKING' }, { ...env.pki.tsta.es256, bankCode: 'XXXX' })).json.code).toBe('UNKNOWN_BANK');
  // ATM: 1 accepted, 1 rejected, 1 MAC failure, 1 unknown acquirer.
  const atm = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex'));
  const request = (stan: string, person: { nationalId: string; mobile: string }, overrides: IsoFields = {}): IsoFields => ({
    0: '0200', 2: '4111111111111111', 3: '910000', 7: '1123101500', 11: stan, 12: '101500', 13: '1123', 32: '111111', 37: `OPS${stan}000`, 41: 'OPSATM01',
    48: `NI010${person.nationalId}MN013${person.mobile}`, ...overrides,
  });
  await env.register(people[4].nationalId, people[4].mobile, 'PENDING_ACTIVATION');
  expect((await atm.request(request('400001', people[4]))).fields[39]).toBe('00');
  expect((await atm.request(request('400002', { nationalId: people[0].nationalId, mobile: newMobile() }))).fields[39]).toBe('N1');
  expect((await atm.request(request('400003', people[1]), 'wrong')).fields[39]).toBe('63');
  expect((await atm.request(request('400004', people[1], { 32: '424242' }))).fields[39]).toBe('58');
  await atm.close();

  // Issue 4, acceptance 4: /metrics counts the same traffic.
  const metrics = await (await fetch(`${env.managementUrl}/metrics`)).text();
  const count = (labels: Record<string, string>) =>
    metrics
      .split('\n')
      .filter((line) => line.startsWith('absher_gateway_requests_total{') && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
  expect(count({ channel: 'INTERNET_BANKING', outcome: 'ACCEPTED', replayed: 'false' })).toBe(3);
  expect(count({ outcome: 'ACCEPTED', replayed: 'true' })).toBe(1);
  expect(count({ reason: 'NOT_REGISTERED' })).toBe(1);
  expect(count({ reason: 'MOBILE_MISMATCH' })).toBe(2);
  expect(count({ outcome: 'ERROR', error_code: 'SIGNATURE_INVALID' })).toBe(2);
  expect(count({ bank: 'UNKNOWN', error_code: 'UNKNOWN_BANK' })).toBe(2);
  expect(count({ channel: 'ATM' })).toBe(4);
  expect(metrics).toMatch(/absher_gateway_decision_latency_seconds_count\{channel="ATM",outcome="ACCEPTED"\} 1/);
  expect(metrics).toMatch(/^absher_gateway_outbox_backlog \d+/m);
  expect(metrics).toMatch(/^absher_gateway_iso8583_connections_open \d+/m);
  expect(metrics).toMatch(/absher_gateway_consumer_lag\{topic="absher.registrations.v1",partition="\d"\} \d+/);

  await env.stopGateway(); // SIGTERM: the open minutes' summaries are written and published before exit
  await env.settled(reader);
  const handled = reader.on(TOPICS.ops).filter((r) => r.event.type === 'sa.absher.gateway.request-handled');
  const unique = [...new Map(handled.map((r) => [r.event.id, r])).values()];
  const tally = (filter: (d: Record<string, unknown>) => boolean) => unique.filter((r) => filter(r.event.data)).length;
  expect(unique).toHaveLength(9 + 4);
  expect(tally((d) => d.channel !== 'ATM' && d.outcome === 'ACCEPTED' && !d.replayed)).toBe(3);
  expect(tally((d) => d.channel !== 'ATM' && d.outcome === 'ACCEPTED' && d.replayed === true)).toBe(1);
  expect(tally((d) => d.channel !== 'ATM' && d.outcome === 'REJECTED')).toBe(2);
  expect(unique.filter((r) => r.event.data.outcome === 'ERROR' && r.event.data.channel !== 'ATM').map((r) => r.event.data.errorCode).sort()).toEqual(['INVALID_MOBILE', 'SIGNATURE_INVALID', 'UNKNOWN_BANK']);
  expect(tally((d) => d.channel === 'ATM' && d.outcome === 'ACCEPTED')).toBe(1);
  expect(tally((d) => d.channel === 'ATM' && d.outcome === 'REJECTED' && d.reason === 'MOBILE_MISMATCH')).toBe(1);
  expect(unique.filter((r) => r.event.data.channel === 'ATM' && r.event.data.outcome === 'ERROR').map((r) => [r.event.data.bankCode, r.event.data.errorCode]).sort()).toEqual([
    ['TSTA', 'SIGNATURE_INVALID'],
    ['UNKNOWN', 'UNKNOWN_BANK'],
  ]);
  for (const record of unique) expectEventContract(record.topic, record.key, record.event);

  const summaries = [...new Map(reader.on(TOPICS.ops).filter((r) => r.event.type === 'sa.absher.gateway.summary').map((r) => [r.event.id, r])).values()];
  expect(summaries.length).toBeGreaterThanOrEqual(4);
  for (const summary of summaries) expectEventContract(summary.topic, summary.key, summary.event);
  const summed = (bank: string, channel: string, outcome: string) =>
    summaries.filter((s) => s.event.data.bankCode === bank && s.event.data.channel === channel).reduce((n, s) => n + Number((s.event.data.outcomes as Record<string, number>)[outcome]), 0);
  for (const bank of ['TSTA', 'UNKNOWN']) {
    for (const channel of ['ATM', 'INTERNET_BANKING', 'PHONE_BANKING']) {
      for (const outcome of ['ACCEPTED', 'REJECTED', 'ERROR']) {
        expect({ bank, channel, outcome, n: summed(bank, channel, outcome) }).toEqual({ bank, channel, outcome, n: tally((d) => d.bankCode === bank && d.channel === channel && d.outcome === outcome) });
      }
    }
  }

  for (const record of reader.on(TOPICS.ops)) {
    for (const person of people) {
      expect(record.raw).not.toContain(person.nationalId);
      expect(record.raw).not.toContain(person.mobile.slice(4));
    }
    expect(record.raw).not.toContain('4111111111111111');
  }
  await env.startGateway(); // for afterAll's orderly stop
});
