import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, RecordMetadata } from 'kafkajs';
import { projectRoot } from '../src/common/project-root';
import { EVENT_TYPES, TOPICS } from '../src/kafka/topics';
import { REGISTRATIONS_GROUP } from '../src/registry/registrations-consumer';

/**
 * The identity core's stand-in for the development tools (`simulate`,
 * `conformance:dev-customers`): where the running gateway's Kafka is, and
 * publishing registrations (spec 5.2) the way the identity core does.
 */
export function developmentKafkaBrokers(): string[] {
  if (process.env.KAFKA_BROKERS) return process.env.KAFKA_BROKERS.split(',');
  // The gateway writes its development broker's address here (KafkaConnection).
  const file = join(process.env.DATA_DIR ?? join(projectRoot(), '.data'), 'kafka-brokers');
  if (!existsSync(file)) throw new Error(`no KAFKA_BROKERS and no ${file}: start the gateway first (npm start), or set KAFKA_BROKERS to its cluster`);
  return readFileSync(file, 'utf8').trim().split(',');
}

/**
 * Publishes registrations as CloudEvents and waits until the gateway's
 * registrations consumer has committed past them, so its read model holds
 * them when this returns.
 */
export async function publishRegistrations(
  kafka: Kafka,
  registrations: { nationalId: string; mobile: string; status: string }[],
  source: string,
  timeoutMs = 30_000,
): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  // Versions only have to rise per national ID.
  const version = Date.now();
  const event = (r: { nationalId: string; mobile: string; status: string }) =>
    JSON.stringify({
      specversion: '1.0',
      id: randomUUID(),
      source,
      type: EVENT_TYPES.registrationUpdated,
      time: new Date().toISOString(),
      subject: r.nationalId,
      datacontenttype: 'application/json',
      data: { nationalId: r.nationalId, mobile: r.mobile, status: r.status, version },
    });
  const sent: RecordMetadata[] = [];
  // In chunks, well under Kafka's 1 MB request limit however many are registered.
  for (let i = 0; i < registrations.length; i += 1000) {
    const chunk = registrations.slice(i, i + 1000).map((r) => ({ key: r.nationalId, value: event(r) }));
    sent.push(...(await producer.send({ topic: TOPICS.registrations, messages: chunk })));
  }
  await producer.disconnect();
  const admin = kafka.admin();
  await admin.connect();
  try {
    // Consumed once the gateway's committed offset reaches the end of every partition written to, as it was after the last send.
    const written = new Set(sent.map((r) => r.partition));
    const ends = (await admin.fetchTopicOffsets(TOPICS.registrations)).filter((p) => written.has(p.partition));
    for (const deadline = Date.now() + timeoutMs; ; ) {
      const [offsets] = await admin.fetchOffsets({ groupId: REGISTRATIONS_GROUP, topics: [TOPICS.registrations] });
      const consumed = ends.every((end) => BigInt(offsets?.partitions.find((p) => p.partition === end.partition)?.offset ?? '-1') >= BigInt(end.offset));
      if (consumed) return;
      if (Date.now() > deadline) throw new Error(`the gateway did not consume the registrations within ${timeoutMs / 1000} s: is it running against this broker?`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await admin.disconnect();
  }
}
