import { DataSource } from 'typeorm';
import { JsonLogger } from '../logging/json-logger';
import { OTHER_SOURCES, Refusal, RefusedTraffic } from './refused-traffic';

/** The bounds of RefusedTraffic's memory, sample and log, whatever the flood (the writes are checked end to end in refused-traffic.e2e-spec). */
describe('RefusedTraffic', () => {
  const queries: Array<{ sql: string; params: unknown[][] }> = [];
  const store = { query: async (sql: string, params: unknown[][]) => void queries.push({ sql, params }) } as unknown as DataSource;
  const lines: Array<Record<string, unknown>> = [];
  const write = JsonLogger.write;
  let now = Date.parse('2026-11-27T10:00:05Z');

  beforeEach(() => {
    queries.length = 0;
    lines.length = 0;
    JsonLogger.write = (line) => void lines.push(JSON.parse(line));
  });
  afterEach(() => {
    JsonLogger.write = write;
  });

  const refusal = (source: string, code = '63'): Refusal => ({
    channel: 'ATM',
    source,
    bankCode: 'TSTA',
    code,
    reason: 'MAC does not verify',
    sample: { mti: '0200', acquirerId: source, stan: '000001', rrn: 'RRN000001000', terminalId: 'ATM00042' },
  });

  it('10,000 refusals from 3,000 sources: every one counted (the sources past 1,000 lumped), at most the sample, at most 6 log lines per interval', async () => {
    const traffic = new RefusedTraffic(store, { samplesPerMinute: 60, retentionDays: 30 }, new JsonLogger('test'), () => now);
    for (let i = 0; i < 10_000; i++) traffic.refuse(refusal(String(100_000 + (i % 3000))));
    await traffic.stop(); // summarises and flushes
    const counts = queries.find((q) => q.sql.includes('refused_traffic_minute'))!;
    const [, , sources, , , refused] = counts.params as [unknown[], unknown[], string[], unknown[], unknown[], number[]];
    expect(sources.length).toBeLessThanOrEqual(1001);
    expect(sources).toContain(OTHER_SOURCES);
    expect(refused.reduce((a, b) => a + b, 0)).toBe(10_000);
    const samples = queries.find((q) => q.sql.includes('atm_refused_message'))!;
    expect(samples.params[0]).toHaveLength(60);
    expect(lines.length).toBe(6);
    expect(lines[5]).toMatchObject({ message: 'refused traffic in the last 10 s', refused: 10_000 });
  });

  it('one source: at most 5 samples a minute, and again 5 the next minute', async () => {
    const traffic = new RefusedTraffic(store, { samplesPerMinute: 60, retentionDays: 30 }, new JsonLogger('test'), () => now);
    for (let i = 0; i < 100; i++) traffic.refuse(refusal('111111'));
    now += 60_000;
    for (let i = 0; i < 100; i++) traffic.refuse(refusal('111111'));
    await traffic.stop();
    expect(queries.find((q) => q.sql.includes('atm_refused_message'))!.params[0]).toHaveLength(10);
    const counts = queries.find((q) => q.sql.includes('refused_traffic_minute'))!;
    expect(counts.params[5]).toEqual([100, 100]);
  });

  it('a store that fails keeps the counts for the next flush', async () => {
    let fail = true;
    const flaky = {
      query: async (sql: string, params: unknown[][]) => {
        if (fail) throw new Error('connection refused');
        queries.push({ sql, params });
      },
    } as unknown as DataSource;
    const traffic = new RefusedTraffic(flaky, { samplesPerMinute: 60, retentionDays: 30 }, new JsonLogger('test'), () => now);
    for (let i = 0; i < 7; i++) traffic.refuse(refusal('111111'));
    await traffic.flush();
    fail = false;
    traffic.refuse(refusal('111111'));
    await traffic.flush();
    expect(queries.find((q) => q.sql.includes('refused_traffic_minute'))!.params[5]).toEqual([8]);
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(1);
  });
});
