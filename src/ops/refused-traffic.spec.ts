import { JsonLogger } from '../logging/json-logger';
import { OTHER_SOURCES, Refusal, RefusedTraffic } from './refused-traffic';
import { RefusedAtmMessage, RefusedCount, RefusedHttpRequest, RefusedTrafficStore } from './refused-traffic.repository';

/** What RefusedTraffic wrote, in memory: the logic under test is what it keeps and when it writes. */
class WrittenRefusals implements RefusedTrafficStore {
  counts: RefusedCount[][] = [];
  atm: RefusedAtmMessage[][] = [];
  http: RefusedHttpRequest[][] = [];
  failing = false;
  async addCounts(counts: readonly RefusedCount[]): Promise<void> {
    if (this.failing) throw new Error('connection refused');
    if (counts.length) this.counts.push([...counts]);
  }
  async addAtmSamples(samples: readonly RefusedAtmMessage[]): Promise<void> {
    if (samples.length) this.atm.push([...samples]);
  }
  async addHttpSamples(samples: readonly RefusedHttpRequest[]): Promise<void> {
    if (samples.length) this.http.push([...samples]);
  }
  async pruneOlderThan(): Promise<void> {}
}

/** The bounds of RefusedTraffic's memory, sample and log, whatever the flood (the writes are checked end to end in refused-traffic.e2e-spec). */
describe('RefusedTraffic', () => {
  let store: WrittenRefusals;
  const lines: Array<Record<string, unknown>> = [];
  const write = JsonLogger.write;
  let now = Date.parse('2026-11-27T10:00:05Z');

  beforeEach(() => {
    store = new WrittenRefusals();
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
    const [counts] = store.counts;
    const sources = counts.map((c) => c.source);
    expect(sources.length).toBeLessThanOrEqual(1001);
    expect(sources).toContain(OTHER_SOURCES);
    expect(counts.reduce((sum, c) => sum + c.refused, 0)).toBe(10_000);
    expect(store.atm[0]).toHaveLength(60);
    expect(lines.length).toBe(6);
    expect(lines[5]).toMatchObject({ message: 'refused traffic in the last 10 s', refused: 10_000 });
  });

  it('one source: at most 5 samples a minute, and again 5 the next minute', async () => {
    const traffic = new RefusedTraffic(store, { samplesPerMinute: 60, retentionDays: 30 }, new JsonLogger('test'), () => now);
    for (let i = 0; i < 100; i++) traffic.refuse(refusal('111111'));
    now += 60_000;
    for (let i = 0; i < 100; i++) traffic.refuse(refusal('111111'));
    await traffic.stop();
    expect(store.atm[0]).toHaveLength(10);
    expect(store.counts[0].map((c) => c.refused)).toEqual([100, 100]);
  });

  it('a store that fails keeps the counts for the next flush', async () => {
    store.failing = true;
    const traffic = new RefusedTraffic(store, { samplesPerMinute: 60, retentionDays: 30 }, new JsonLogger('test'), () => now);
    for (let i = 0; i < 7; i++) traffic.refuse(refusal('111111'));
    await traffic.flush();
    store.failing = false;
    traffic.refuse(refusal('111111'));
    await traffic.flush();
    expect(store.counts[0].map((c) => c.refused)).toEqual([8]);
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(1);
  });
});
