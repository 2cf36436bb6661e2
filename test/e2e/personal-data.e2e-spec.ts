import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { atmActivation, atmRequestId, TSTA_MAC_KEY } from '../support/atm-requests';
import { redactPersonalData } from '../../libs/identity';
import { EVENT_TYPES, TOPICS } from '../../src/kafka/topics';
import { localSpelling, newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/** No full national ID or mobile in any log line (at debug level) or on the ops topic, after every kind of traffic. */
let env: TestEnvironment;
let reader: TopicReader;

beforeAll(async () => {
  env = await TestEnvironment.start({ LOG_LEVEL: 'debug' });
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.ops, TOPICS.activations]);
});

afterAll(async () => {
  await reader?.stop();
  await env?.stop();
});

it('logs and ops events never carry a national ID or mobile in clear', async () => {
  const people = Array.from({ length: 6 }, (_, i) => ({ nationalId: newNationalId(i % 2 ? '2' : '1'), mobile: newMobile() }));
  const statuses = ['PENDING_ACTIVATION', 'ACTIVE', 'SUSPENDED', 'CLOSED', 'PENDING_ACTIVATION', 'PENDING_ACTIVATION'];
  for (const [i, person] of people.entries()) await env.register(person.nationalId, person.mobile, statuses[i]);
  // A dead-lettered registration carrying personal data too.
  await env.publishRegistration({ nationalId: people[0].nationalId, mobile: localSpelling(people[0].mobile), status: 'ACTIVE', version: 99 });
  let n = 0;
  const send = (body: Record<string, unknown>, headers?: Record<string, string>) => env.send(env.pki.tsta.es256, { requestId: `pd-${++n}`, body, headers });
  for (const person of people) {
    await send({ nationalId: person.nationalId, mobile: localSpelling(person.mobile), channel: 'INTERNET_BANKING' });
    await send({ nationalId: person.nationalId, mobile: newMobile(), channel: 'PHONE_BANKING' });
    await send({ nationalId: person.nationalId.slice(0, 9) + '0', mobile: person.mobile, channel: 'INTERNET_BANKING' });
    await send({ nationalId: person.nationalId, mobile: person.mobile.slice(0, 8), channel: 'INTERNET_BANKING' });
    await send({ nationalId: person.nationalId, mobile: person.mobile, channel: 'INTERNET_BANKING', extra: person.nationalId });
    await send({ nationalId: person.nationalId, mobile: person.mobile, channel: 'INTERNET_BANKING' }, { 'x-jws-signature': 'garbage' });
  }
  await env.settled(reader);
  await new Promise((resolve) => setTimeout(resolve, 300));

  const ops = reader.on(TOPICS.ops);
  expect(ops.length).toBeGreaterThanOrEqual(people.length * 2);
  await env.waitForLog((line) => line.includes('http request answered'));
  // Sanity: the activation topic does carry them (it is meant to), so the search below can find them.
  expect(reader.on(TOPICS.activations).some((r) => r.raw.includes(people[0].nationalId))).toBe(true);

  const haystacks = [...env.logs.map((line) => ['log', line]), ...ops.map((record) => ['ops event', record.raw])];
  for (const person of people) {
    const needles = [person.nationalId, person.mobile, person.mobile.slice(4), localSpelling(person.mobile)];
    for (const [where, text] of haystacks) {
      for (const needle of needles) if (text.includes(needle)) throw new Error(`${where} contains ${needle}: ${text}`);
    }
  }
  // Every decision's event stands for its customer by the hash (not the minute summaries, which name no one).
  const decisions = ops.filter((r) => r.event.type === EVENT_TYPES.requestHandled && r.event.data.outcome !== 'ERROR');
  expect(decisions.length).toBeGreaterThan(0);
  for (const record of decisions) expect(record.event.data.subjectHash).toMatch(/^[0-9a-f]{32}$/);
  for (const record of ops) {
    expect(Object.keys(record.event.data)).not.toEqual(expect.arrayContaining(['nationalId']));
  }
});

it('one request id follows a request through the logs: HTTP or ISO 8583, the event published on Kafka, the result from the identity core', async () => {
  const lines = (requestId: string) =>
    env.logs.flatMap((line) => {
      const entry = JSON.parse(line) as { message: string; requestId?: string };
      // As logged: digit runs that look like a mobile or an ID are masked even inside a request id.
      return entry.requestId === redactPersonalData(requestId) ? [entry.message] : [];
    });

  const person = { nationalId: newNationalId(), mobile: newMobile() };
  await env.register(person.nationalId, person.mobile, 'PENDING_ACTIVATION');
  const requestId = `trace-${Date.now()}`;
  const answer = await env.send(env.pki.tsta.es256, { requestId, body: { ...person, channel: 'INTERNET_BANKING' } });
  expect(answer.json.status).toBe('ACCEPTED');
  await env.settled(reader);
  await env.publishResult({ activationId: answer.json.activationId, result: 'ACTIVATED', reason: null, completedAt: new Date().toISOString() }, String(answer.json.activationId));
  await env.waitForRow(`SELECT 1 FROM activation_request WHERE request_id = $1 AND status = 'ACTIVATED'`, [requestId], 'the result applied');
  await new Promise((resolve) => setTimeout(resolve, 200));
  // 'activation request authenticated' is written inside the handler, which passes no request id: the id is the request's log binding.
  expect(lines(requestId)).toEqual(expect.arrayContaining(['activation request authenticated', 'http request answered', 'event published', 'activation result applied']));
  expect(lines(requestId).filter((m) => m === 'event published')).toHaveLength(2); // the decision and its request-handled event

  const atmPerson = { nationalId: newNationalId(), mobile: newMobile() };
  await env.register(atmPerson.nationalId, atmPerson.mobile, 'PENDING_ACTIVATION');
  const atm = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_MAC_KEY);
  const fields = atmActivation(atmPerson);
  try {
    expect((await atm.request(fields)).fields[39]).toBe('00');
  } finally {
    await atm.close();
  }
  await env.settled(reader);
  await new Promise((resolve) => setTimeout(resolve, 200));
  // 'iso request' and 'iso response' pass no request id either: it is bound to the lines of the message being handled.
  expect(lines(atmRequestId(fields))).toEqual(expect.arrayContaining(['iso request', 'iso response', 'event published']));
});
