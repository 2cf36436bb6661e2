import { BUCKET_MS, HandledRequest, OpsView, parseRequestHandled, WINDOW_MS } from './ops-view';

const T0 = Date.UTC(2026, 10, 23, 10, 0, 0);

function handled(overrides: Partial<HandledRequest> = {}): HandledRequest {
  return { bankCode: 'RJHI', channel: 'ATM', outcome: 'ACCEPTED', reason: null, errorCode: null, latencyMs: 5, handledAt: T0, ...overrides };
}

function event(data: Record<string, unknown>, type = 'sa.absher.gateway.request-handled'): Buffer {
  return Buffer.from(JSON.stringify({ specversion: '1.0', id: 'x', type, data }));
}

describe('OpsView', () => {
  it('counts outcomes and causes per bank, channel and 5-second bucket', () => {
    let now = T0 + 1000;
    const view = new OpsView(() => now);
    view.add(handled());
    view.add(handled({ outcome: 'REJECTED', reason: 'MOBILE_MISMATCH', latencyMs: 9 }));
    view.add(handled({ outcome: 'ERROR', errorCode: 'SIGNATURE_INVALID', handledAt: T0 + BUCKET_MS }));
    view.add(handled({ bankCode: 'NCBK', channel: 'PHONE_BANKING' }));
    now = T0 + BUCKET_MS + 1;
    const { series } = view.snapshot();
    const rjhi = series.find((s) => s.bankCode === 'RJHI')!;
    expect(rjhi.buckets.map((b) => [b.start, b.total, b.outcomes])).toEqual([
      [T0, 2, { ACCEPTED: 1, REJECTED: 1, ERROR: 0 }],
      [T0 + BUCKET_MS, 1, { ACCEPTED: 0, REJECTED: 0, ERROR: 1 }],
    ]);
    expect(rjhi.buckets[0].causes).toEqual({ MOBILE_MISMATCH: 1 });
    expect(rjhi.buckets[1].causes).toEqual({ SIGNATURE_INVALID: 1 });
    expect(rjhi.buckets[0].latencyMs).toEqual({ p50: 9, p95: 9, p99: 9, max: 9 });
    expect(series.find((s) => s.bankCode === 'NCBK')!.channel).toBe('PHONE_BANKING');
  });

  it('hands out only what changed since the last call, then nothing', () => {
    const view = new OpsView(() => T0);
    view.add(handled());
    view.add(handled({ bankCode: 'NCBK' }));
    expect(view.takeChanges().series.map((s) => s.bankCode).sort()).toEqual(['NCBK', 'RJHI']);
    expect(view.takeChanges().series).toEqual([]);
    view.add(handled({ outcome: 'REJECTED', reason: 'NOT_REGISTERED' }));
    const [changed] = view.takeChanges().series;
    expect(changed.bankCode).toBe('RJHI');
    expect(changed.buckets[0].outcomes).toEqual({ ACCEPTED: 1, REJECTED: 1, ERROR: 0 });
  });

  it('keeps only the last 15 minutes, and ignores events from outside the window', () => {
    let now = T0;
    const view = new OpsView(() => now);
    expect(view.add(handled({ handledAt: T0 - WINDOW_MS - BUCKET_MS }))).toBe(false);
    expect(view.add(handled({ handledAt: T0 + 60_000 }))).toBe(false); // from the future: a skewed clock
    expect(view.add(handled())).toBe(true);
    now = T0 + WINDOW_MS + BUCKET_MS;
    expect(view.snapshot().series).toEqual([]);
  });

  it('bounds latency samples per bucket however busy, and still reports the maximum', () => {
    const view = new OpsView(() => T0);
    for (let i = 1; i <= 10_000; i++) view.add(handled({ latencyMs: i % 100 }));
    view.add(handled({ latencyMs: 5000 }));
    const [bucket] = view.snapshot().series[0].buckets;
    expect(bucket.total).toBe(10_001);
    expect(bucket.latencyMs.max).toBe(5000);
    expect(bucket.latencyMs.p50).toBeGreaterThan(20);
    expect(bucket.latencyMs.p50).toBeLessThan(80);
  });
});

describe('parseRequestHandled', () => {
  const data = { bankCode: 'RJHI', channel: 'ATM', outcome: 'REJECTED', reason: 'MOBILE_MISMATCH', errorCode: null, latencyMs: 3.5, handledAt: '2026-11-23T10:00:00.000Z' };

  it('reads a request-handled event', () => {
    expect(parseRequestHandled(event(data))).toEqual({ ...data, handledAt: T0 });
  });

  it.each([
    ['a summary', event(data, 'sa.absher.gateway.summary')],
    ['not JSON', Buffer.from('{nope')],
    ['empty', Buffer.alloc(0)],
    ['an unknown outcome', event({ ...data, outcome: 'MAYBE' })],
    ['markup as a bank code', event({ ...data, bankCode: '<script>' })],
    ['a negative latency', event({ ...data, latencyMs: -1 })],
    ['no time', event({ ...data, handledAt: 'yesterday' })],
  ])('skips %s', (_name, value) => {
    expect(parseRequestHandled(value)).toBeNull();
  });
});
