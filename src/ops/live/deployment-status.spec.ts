import { InstanceView } from '../../instances/instance.repository';
import { DeploymentReads, DeploymentStatus, READ_EVERY_MS } from './deployment-status';

const INSTANCE: InstanceView = {
  instanceId: 'gw-a-1',
  host: 'gw-a',
  pid: 1,
  startedAt: '2025-01-01T00:00:00.000Z',
  heartbeatAt: '2025-01-01T00:00:10.000Z',
  relaySlots: [0, 1, 2],
  partitions: { 'absher.registrations.v1': [0, 1] },
  live: true,
};

/** Reads of a store: the instances and the parked count; `fail` and `hang` stand for a store in trouble. */
function fakeStore() {
  const store = { queries: 0, parked: 1, fail: false, hang: false };
  const ask = async <T>(answer: () => T): Promise<T> => {
    store.queries++;
    if (store.hang) return new Promise<T>(() => undefined);
    if (store.fail) throw new Error('connection refused');
    return answer();
  };
  const reads: DeploymentReads = { instances: () => ask(() => [INSTANCE]), parkedEvents: () => ask(() => store.parked) };
  return { store, reads };
}

describe('DeploymentStatus', () => {
  it('reads instances and parked events at most every 2 s, one read at a time, whoever asks', async () => {
    const { store, reads } = fakeStore();
    let now = 1_000_000;
    const status = new DeploymentStatus(reads, () => now);
    const answers = await Promise.all([status.read(), status.read(), status.read()]);
    for (const _ of Array(10)) status.current();
    expect(store.queries).toBe(2); // listInstances, then the count
    expect(answers[0]).toEqual({
      liveInstances: 1,
      instances: [{ instanceId: 'gw-a-1', live: true, heartbeatAt: '2025-01-01T00:00:10.000Z', relaySlots: [0, 1, 2], partitions: { 'absher.registrations.v1': [0, 1] } }],
      parkedEvents: 1,
      readAt: now,
      stale: false,
    });
    expect(answers[0].instances[0]).not.toHaveProperty('host'); // what it owns, not where it runs

    store.parked = 3;
    now += READ_EVERY_MS - 1;
    expect((await status.read()).parkedEvents).toBe(1);
    now += 1;
    expect((await status.read()).parkedEvents).toBe(3);
    expect(store.queries).toBe(4);
  });

  it('a failing store gives the last values, marked stale, and no error', async () => {
    const { store, reads } = fakeStore();
    let now = 1_000_000;
    const status = new DeploymentStatus(reads, () => now);
    await status.read();
    store.fail = true;
    now += READ_EVERY_MS;
    await expect(status.read()).resolves.toMatchObject({ liveInstances: 1, parkedEvents: 1, readAt: 1_000_000, stale: true });
    store.fail = false;
    now += READ_EVERY_MS;
    await expect(status.read()).resolves.toMatchObject({ readAt: now, stale: false });
  });

  it('a store that does not answer: read() gives up waiting after a second, and no second query starts', async () => {
    jest.useFakeTimers();
    try {
      const { store, reads } = fakeStore();
      let now = 1_000_000;
      store.hang = true;
      const status = new DeploymentStatus(reads, () => now);
      const answer = status.read();
      await jest.advanceTimersByTimeAsync(1000);
      await expect(answer).resolves.toEqual({ liveInstances: 0, instances: [], parkedEvents: 0, readAt: null, stale: true });
      now += 10 * READ_EVERY_MS;
      expect(status.current().stale).toBe(true);
      expect(store.queries).toBe(1);
    } finally {
      jest.useRealTimers();
    }
  });
});
