import { randomUUID } from 'node:crypto';
import { Consumer, Kafka, logLevel } from 'kafkajs';

export interface ReadRecord {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  /** The record's headers as text (a header repeated keeps its last value; one without a value is an empty string). */
  headers: Record<string, string>;
  raw: string;
  event: { id: string; type: string; subject: string; data: Record<string, unknown>; [name: string]: unknown };
}

/** A real Kafka consumer (its own group, from the beginning) collecting everything on some topics. */
export class TopicReader {
  readonly records: ReadRecord[] = [];
  private constructor(
    private readonly consumer: Consumer,
    readonly topics: string[],
  ) {}

  static async start(brokers: string[], topics: string[]): Promise<TopicReader> {
    // Retries without end (a second apart at most): the fault tests keep the broker away for 30 s and more.
    const kafka = new Kafka({ clientId: 'test-reader', brokers, logLevel: logLevel.NOTHING, retry: { retries: 1000, maxRetryTime: 1000 } });
    const consumer = kafka.consumer({ groupId: `test-reader-${randomUUID()}`, maxWaitTimeInMs: 100, sessionTimeout: 6000, heartbeatInterval: 500, retry: { retries: 1000, maxRetryTime: 1000 } });
    const reader = new TopicReader(consumer, topics);
    await consumer.connect();
    await consumer.subscribe({ topics, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        const raw = message.value?.toString() ?? '';
        let event: ReadRecord['event'];
        try {
          event = JSON.parse(raw);
        } catch {
          event = { id: '', type: 'not-json', subject: '', data: {} };
        }
        const headers = Object.fromEntries(
          Object.entries(message.headers ?? {}).map(([name, value]) => [name, String((Array.isArray(value) ? value[value.length - 1] : value) ?? '')]),
        );
        reader.records.push({ topic, partition, offset: message.offset, key: message.key?.toString() ?? null, headers, raw, event });
      },
    });
    return reader;
  }

  on(topic: string): ReadRecord[] {
    return this.records.filter((r) => r.topic === topic);
  }

  /** Waits until `predicate` holds for what has been read; fails with what was seen otherwise. */
  async waitFor(predicate: (records: ReadRecord[]) => boolean, what: string, timeoutMs = 20_000): Promise<ReadRecord[]> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (predicate(this.records)) return this.records;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`timed out waiting for ${what}; read ${this.records.length} records: ${this.records.map((r) => r.event.type).join(', ')}`);
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect().catch(() => undefined);
  }
}
