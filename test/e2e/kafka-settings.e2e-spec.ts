import { CompressionCodecs, CompressionTypes } from 'kafkajs';
import { TOPICS } from '../../src/kafka/topics';
import { expectEventContract } from '../support/contracts';
import { newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/**
 * The gateway's production Kafka settings, end to end: KAFKA_COMPRESSION
 * decides how the outbox relay's batches travel, and a broken
 * KAFKA_SSL_CA_FILE stops start-up.
 *
 * kafkajs consumers decompress gzip by themselves, so reading the events back
 * proves nothing about compression. The test's reader counts the gzip record
 * batches it decompresses, by wrapping kafkajs's gzip codec in this process
 * (the gateway's own process is untouched); the identity core's stand-in
 * producer here sends uncompressed batches, and the reader reads only topics
 * the gateway writes.
 */
let gzipBatchesRead = 0;
const gzip = CompressionCodecs[CompressionTypes.GZIP];
CompressionCodecs[CompressionTypes.GZIP] = () => {
  const codec = gzip();
  return {
    compress: codec.compress,
    decompress: (buffer: Buffer) => {
      gzipBatchesRead++;
      return codec.decompress(buffer);
    },
  };
};

let env: TestEnvironment;
let reader: TopicReader;
let n = 0;

beforeAll(async () => {
  env = await TestEnvironment.start({ KAFKA_COMPRESSION: 'gzip' });
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.activations, TOPICS.ops]);
});

afterAll(async () => {
  await reader?.stop();
  await env?.stop();
});

/**
 * A decision; resolves once its events are read, with them. Without a
 * registration it is a rejection (NOT_REGISTERED), which needs no wait for
 * the registrations consumer of a restarted gateway to rejoin its group.
 */
async function decide(registered: boolean): Promise<TopicReader['records']> {
  const nationalId = newNationalId();
  const mobile = newMobile();
  if (registered) await env.register(nationalId, mobile, 'PENDING_ACTIVATION');
  const requestId = `compression-${Date.now()}-${++n}`;
  const answer = await env.send(env.pki.tsta.es256, { requestId, body: { nationalId, mobile, channel: 'INTERNET_BANKING' } });
  expect(answer.json).toMatchObject({ status: registered ? 'ACCEPTED' : 'REJECTED' });
  await env.settled(reader);
  const events = reader.records.filter((r) => r.event.data.requestId === requestId);
  expect(events.map((r) => r.topic).sort()).toEqual([TOPICS.activations, TOPICS.ops].sort());
  for (const record of events) expectEventContract(record.topic, record.key, record.event);
  return events;
}

it('KAFKA_COMPRESSION=gzip: the relay sends gzip batches, and consumers read the events as published', async () => {
  const before = gzipBatchesRead;
  const events = await decide(true);
  expect(gzipBatchesRead).toBeGreaterThan(before);
  expect(events.find((r) => r.topic === TOPICS.activations)?.event.type).toBe('sa.absher.activation.accepted');
});

it('KAFKA_COMPRESSION=none: the events, uncompressed', async () => {
  await env.stopGateway();
  await env.startGateway({ KAFKA_COMPRESSION: 'none' });
  const before = gzipBatchesRead;
  const events = await decide(false);
  expect(events.find((r) => r.topic === TOPICS.activations)?.event.type).toBe('sa.absher.activation.rejected');
  expect(gzipBatchesRead).toBe(before);
});

it('a KAFKA_SSL_CA_FILE that cannot be read stops start-up with exit code 78, naming the variable', async () => {
  await env.stopGateway();
  await expect(env.startGateway({ KAFKA_SSL_CA_FILE: '/nonexistent/brokers-ca.pem' })).rejects.toThrow(
    /gateway exited with 78 before listening:[\s\S]*KAFKA_SSL_CA_FILE \/nonexistent\/brokers-ca\.pem cannot be read/,
  );
});
