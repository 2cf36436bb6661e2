import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { TOPICS } from '../../src/kafka/topics';
import { newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/**
 * Issue 4, acceptance 6: SIGTERM under load. The gateway stops taking new
 * work, finishes what is in flight, flushes the outbox to Kafka and exits:
 * every answered decision is stored and already on Kafka, without a restart.
 */
let env: TestEnvironment;
let reader: TopicReader;

beforeAll(async () => {
  env = await TestEnvironment.start();
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.activations]);
});

afterAll(async () => {
  await reader?.stop();
  await env?.stop();
});

it('SIGTERM while HTTP and ATM requests flow: nothing answered is lost, everything answered is published before exit', async () => {
  const people = Array.from({ length: 30 }, () => ({ nationalId: newNationalId(), mobile: newMobile() }));
  for (const person of people) await env.publishRegistration({ ...person, status: 'PENDING_ACTIVATION', version: 1 });
  await env.waitForRow(`SELECT 1 FROM registration WHERE national_id = ANY($1) HAVING count(*) = $2`, [people.map((p) => p.nationalId), people.length], 'registrations');
  const atm = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex'));
  const answered: string[] = [];
  let stopping = false;
  let stan = 500000;
  const httpWorker = async (k: number) => {
    for (let i = k; !stopping; i += 6) {
      const person = people[i % people.length];
      try {
        const answer = await env.send(env.pki.tsta.es256, { requestId: `sigterm-${i}`, body: { ...person, channel: 'INTERNET_BANKING' } });
        if (answer.status === 200) answered.push(String(answer.json.activationId));
      } catch {
        return; // connection refused once the server closed: not answered
      }
    }
  };
  const atmWorker = async () => {
    while (!stopping) {
      const person = people[stan % people.length];
      const s = String(++stan);
      try {
        const answer = await atm.request({ 0: '0200', 2: '4111111111111111', 3: '910000', 7: '1123101500', 11: s, 12: '101500', 13: '1123', 32: '111111', 37: `SIG${s}000`, 41: 'SIGTERM1', 48: `NI010${person.nationalId}MN013${person.mobile}` }, 'valid', 5000);
        const ai = answer.fields[48]?.slice(5);
        if (ai) answered.push(ai);
        else if (answer.fields[39] !== '00') answered.push(`atm-rejected-${s}`);
      } catch {
        return;
      }
    }
  };
  const traffic = Promise.all([...Array.from({ length: 6 }, (_, k) => httpWorker(k)), atmWorker()]);
  await new Promise((resolve) => setTimeout(resolve, 800));
  const exitCode = env.stopGateway();
  const code = await exitCode;
  stopping = true;
  await traffic;
  await atm.close().catch(() => undefined);
  expect(code === 0 || code === null).toBe(true);
  expect(env.logs.some((line) => line.includes('outbox publish failed'))).toBe(false);
  const accepted = answered.filter((id) => !id.startsWith('atm-rejected-'));
  expect(accepted.length).toBeGreaterThan(5);

  // No restart: what the gateway answered must already be stored and on Kafka.
  const [{ unpublished }] = await env.database.query<{ unpublished: number }>(`SELECT count(*)::int AS unpublished FROM outbox_event WHERE published_at IS NULL`);
  expect(unpublished).toBe(0);
  const stored = await env.database.query<{ activation_id: string }>(`SELECT activation_id FROM activation_request WHERE activation_id = ANY($1::uuid[])`, [accepted]);
  expect(stored).toHaveLength(new Set(accepted).size);
  await reader.waitFor((records) => accepted.every((id) => records.some((r) => r.event.data.activationId === id)), 'every answered decision on Kafka');
  await env.startGateway(); // for afterAll
});
