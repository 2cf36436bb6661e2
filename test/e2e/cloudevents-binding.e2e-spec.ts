import { CloudEvent, Kafka as CloudEventsKafka } from 'cloudevents';
import { IHeaders, Kafka, logLevel, Producer } from 'kafkajs';
import { ACTIVATION_RESULTS_GROUP } from '../../src/activation/activation-results-consumer';
import { EVENT_TYPES, TOPICS } from '../../src/kafka/topics';
import { expectEventContract } from '../support/contracts';
import { localSpelling, newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';
import { ReadRecord, TopicReader } from '../support/topic-reader';

/**
 * The CloudEvents Kafka protocol binding (v1.0.2) end to end: what the
 * gateway publishes is read by the CloudEvents SDK as structured-mode events,
 * and what the identity core publishes in binary mode is consumed like its
 * structured events (or dead-lettered with the reason).
 */
const STRUCTURED_CONTENT_TYPE = 'application/cloudevents+json; charset=utf-8';
const IDENTITY_CORE = 'urn:absher:identity-core';

let env: TestEnvironment;
let reader: TopicReader;
let identityCore: Producer;
let sequence = 0;

beforeAll(async () => {
  env = await TestEnvironment.start();
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.activations, TOPICS.ops, TOPICS.deadLetters]);
  identityCore = new Kafka({ clientId: 'identity-core-binary', brokers: env.broker.brokers, logLevel: logLevel.NOTHING }).producer();
  await identityCore.connect();
});

afterAll(async () => {
  await identityCore?.disconnect().catch(() => undefined);
  await reader?.stop();
  await env?.stop();
});

/** A record as a CloudEvents SDK consumer sees it: recognised as an event, converted, and valid. */
function throughSdk(record: ReadRecord): CloudEvent<unknown> {
  const message = { headers: record.headers, key: record.key ?? '', value: record.raw, body: record.raw };
  expect(CloudEventsKafka.isEvent(message)).toBe(true);
  const event = CloudEventsKafka.toEvent<unknown>(message);
  if (Array.isArray(event)) throw new Error(`one record converted to ${event.length} events`);
  expect(event).toBeInstanceOf(CloudEvent);
  // The SDK's own check of the attributes against CloudEvents 1.0 (it throws with what is wrong).
  expect((event as CloudEvent<unknown>).validate()).toBe(true);
  return event as CloudEvent<unknown>;
}

/** The record is in structured mode by the binding, and the SDK's event is the record's JSON value. */
function expectStructuredEvent(record: ReadRecord): void {
  expect(record.headers).toEqual({ 'content-type': STRUCTURED_CONTENT_TYPE });
  const event = throughSdk(record);
  const attributes = (e: Record<string, unknown>) => ({ specversion: e.specversion, id: e.id, type: e.type, source: e.source, subject: e.subject, time: e.time, datacontenttype: e.datacontenttype, data: e.data });
  expect(attributes(event as unknown as Record<string, unknown>)).toEqual(attributes(record.event));
  expect(event.source).toBe('urn:absher:gateway');
}

/** Publishes as the identity core in binary mode: `data` is the value, the attributes are headers. */
async function publishBinary(topic: string, key: string, headers: IHeaders, data: unknown): Promise<{ partition: number; offset: string }> {
  const [metadata] = await identityCore.send({ topic, messages: [{ key, value: JSON.stringify(data), headers }] });
  return { partition: metadata.partition, offset: String(metadata.baseOffset) };
}

/** A binary-mode registration made by the CloudEvents SDK's Kafka binary emitter. */
function binaryRegistration(data: { nationalId: string; mobile: string; status: string; version: number }): { headers: IHeaders; data: unknown } {
  const message = CloudEventsKafka.binary(
    new CloudEvent({ id: `${data.nationalId}-${data.version}`, source: IDENTITY_CORE, type: EVENT_TYPES.registrationUpdated, subject: data.nationalId, datacontenttype: 'application/json', data }),
  );
  // The SDK leaves unset attributes' headers undefined, which kafkajs cannot send.
  const headers = Object.fromEntries(Object.entries(message.headers).filter(([, value]) => value !== undefined).map(([name, value]) => [name, String(value)]));
  return { headers, data: message.value };
}

async function activate(nationalId: string, mobile: string) {
  const requestId = `binding-${++sequence}`;
  const answer = await env.send(env.pki.tsta.es256, { requestId, body: { nationalId, mobile: localSpelling(mobile), channel: 'INTERNET_BANKING' } });
  expect(answer.status).toBe(200);
  return { requestId, body: answer.json as { status: string; activationId: string } };
}

it('an activation event and its ops event are structured-mode CloudEvents that the SDK reads as their JSON value', async () => {
  const nationalId = newNationalId();
  const mobile = newMobile();
  await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
  const { requestId, body } = await activate(nationalId, mobile);
  expect(body.status).toBe('ACCEPTED');

  await env.settled(reader);
  const [decided, ...more] = reader.on(TOPICS.activations).filter((r) => r.event.data.requestId === requestId);
  expect(more).toHaveLength(0);
  expect(decided.key).toBe(nationalId);
  expectEventContract(decided.topic, decided.key, decided.event);
  expectStructuredEvent(decided);
  expect(throughSdk(decided)).toMatchObject({ type: EVENT_TYPES.activationAccepted, subject: body.activationId });

  const handled = reader.on(TOPICS.ops).find((r) => r.event.type === EVENT_TYPES.requestHandled && r.event.data.requestId === requestId);
  expect(handled).toBeDefined();
  expect(handled!.key).toBe('TSTA');
  expectEventContract(handled!.topic, handled!.key, handled!.event);
  expectStructuredEvent(handled!);
});

it('a registration in binary mode is stored, and the activation it allows is ACCEPTED; a binary-mode result completes it', async () => {
  const nationalId = newNationalId();
  const mobile = newMobile();
  const registration = binaryRegistration({ nationalId, mobile, status: 'PENDING_ACTIVATION', version: 7 });
  expect(registration.headers).toMatchObject({ 'content-type': 'application/json', ce_specversion: '1.0', ce_type: EVENT_TYPES.registrationUpdated, ce_source: IDENTITY_CORE });
  await publishBinary(TOPICS.registrations, nationalId, registration.headers, registration.data);
  await env.waitForRow(`SELECT 1 FROM registration WHERE national_id = $1 AND mobile = $2 AND status = 'PENDING_ACTIVATION' AND version = 7`, [nationalId, mobile], 'the binary-mode registration');

  const { body } = await activate(nationalId, mobile);
  expect(body).toMatchObject({ status: 'ACCEPTED' });

  const completedAt = '2026-11-23T10:05:00.000Z';
  const result = await publishBinary(
    TOPICS.activationResults,
    nationalId,
    {
      ce_specversion: '1.0',
      ce_id: `result-${body.activationId}`,
      ce_source: IDENTITY_CORE,
      ce_type: EVENT_TYPES.activationCompleted,
      ce_time: completedAt,
      ce_subject: body.activationId,
      'content-type': 'application/json',
    },
    { activationId: body.activationId, result: 'ACTIVATED', reason: null, completedAt },
  );
  await env.waitForConsumed(ACTIVATION_RESULTS_GROUP, TOPICS.activationResults, result);
  const [row] = await env.database.query<{ status: string }>(`SELECT status FROM activation_request WHERE activation_id = $1`, [body.activationId]);
  expect(row.status).toBe('ACTIVATED');
});

it('a binary-mode registration without a required attribute goes to the DLQ with the reason; consumption goes on', async () => {
  const nationalId = newNationalId();
  const registration = binaryRegistration({ nationalId, mobile: newMobile(), status: 'ACTIVE', version: 1 });
  delete registration.headers.ce_source;
  const sent = await publishBinary(TOPICS.registrations, nationalId, registration.headers, registration.data);
  const after = newNationalId();
  await env.register(after, newMobile(), 'ACTIVE', 1);
  await env.waitForRegistrationsConsumed(sent);
  expect(await env.database.query(`SELECT 1 FROM registration WHERE national_id = $1`, [nationalId])).toHaveLength(0);

  await env.settled(reader);
  const dead = reader.on(TOPICS.deadLetters).find((r) => r.event.data.sourceTopic === TOPICS.registrations && r.event.data.partition === sent.partition && r.event.data.offset === sent.offset);
  expect(dead).toBeDefined();
  expect(dead!.event.data).toMatchObject({ reason: 'binary-mode CloudEvent without the header ce_source', key: nationalId, payload: JSON.stringify(registration.data), payloadEncoding: 'utf8' });
  expectEventContract(dead!.topic, null, dead!.event);
  expectStructuredEvent(dead!);
});

it('every record the gateway published in this file carries the structured-mode content-type', async () => {
  await env.settled(reader);
  expect(reader.records.length).toBeGreaterThan(0);
  const without = reader.records.filter((r) => r.headers['content-type'] !== STRUCTURED_CONTENT_TYPE).map((r) => `${r.topic}/${r.offset}`);
  expect(without).toEqual([]);
});
