import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseTlv } from '../../libs/iso8583';
import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { TOPICS } from '../../src/kafka/topics';
import { RELAY_SLOT_COUNT } from '../../src/outbox/relay-slots';
import { atmActivation, atmRequestId, TSTA_MAC_KEY } from '../support/atm-requests';
import { newMobile, newNationalId } from '../support/identities';
import { spawnGateway, StartedGateway, TestEnvironment } from '../support/test-environment';
import { TopicReader } from '../support/topic-reader';

/**
 * Several instances on one database and one broker (issue 9): three
 * gateways started at the same moment share the outbox relay, the consumer
 * groups and each bank's rate limit; one of them is killed mid-traffic and
 * restarted, and nothing answered is lost, duplicated (outside the failover)
 * or reordered per national ID.
 */
jest.setTimeout(240_000);
const INSTANCES = 3;
const CLI = join(__dirname, '../../dist/tools/cli.js');

let env: TestEnvironment;
let reader: TopicReader;
const gateways: Array<StartedGateway | null> = [];
const logs: string[][] = Array.from({ length: INSTANCES }, () => []);
let sequence = 0;
const nextRequestId = (prefix: string) => `${prefix}-${Date.now()}-${++sequence}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (line: string) => process.stdout.write(`active-active: ${line}\n`);

function startInstance(index: number): Promise<StartedGateway> {
  return spawnGateway(env.gatewayEnv({ GATEWAY_INSTANCE_ID: `gw-${index + 1}`, LOG_LEVEL: 'info', SHUTDOWN_DRAIN_MS: '1500' }), logs[index]).then((started) => (gateways[index] = started));
}

async function kill(index: number): Promise<void> {
  const child = gateways[index]!.child;
  gateways[index] = null;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

async function readiness(gateway: StartedGateway): Promise<{ instanceId: string; liveInstances: number; relaySlots: number[]; partitions: Record<string, number[]> }> {
  const response = await fetch(`${gateway.managementUrl}/health/ready`);
  const body = (await response.json()) as { details: { instance: never } };
  return body.details.instance;
}

function partitionSplit(views: Array<{ instanceId: string; partitions: Record<string, number[]> }>): string {
  return views.map((v) => `${v.instanceId}=${Object.entries(v.partitions).map(([topic, p]) => `${topic.split('.')[1]}:${p.join(',') || '-'}`).join(' ')}`).join('  ');
}

/**
 * Waits until the live instances together own every relay slot, once each,
 * and (unless `relayOnly`) every partition of both consumed topics.
 */
async function waitForFullOwnership(timeoutMs = 30_000, relayOnly = false): Promise<Array<Awaited<ReturnType<typeof readiness>>>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const views = await Promise.all(gateways.filter((g): g is StartedGateway => g !== null).map(readiness));
    const slots = views.flatMap((v) => v.relaySlots).sort((a, b) => a - b);
    const partitionsOf = (topic: string) => views.flatMap((v) => v.partitions[topic] ?? []).sort();
    const complete =
      slots.length === RELAY_SLOT_COUNT &&
      new Set(slots).size === RELAY_SLOT_COUNT &&
      (relayOnly ||
        [TOPICS.registrations, TOPICS.activationResults].every((topic) => partitionsOf(topic).join() === '0,1,2'));
    if (complete) return views;
    if (Date.now() > deadline) throw new Error(`ownership incomplete: ${JSON.stringify(views)}`);
    await sleep(100);
  }
}

/**
 * Waits until the customers' registrations are applied, through the group the three instances share. A
 * rebalance on a loaded machine can take a while (members that miss the 10 s rebalance timeout rejoin and
 * start another), so up to 90 s; when even that is not enough, says how many were applied and who owned
 * which partition, the evidence a stuck member leaves.
 */
async function registered(customers: Array<{ nationalId: string }>): Promise<void> {
  const ids = customers.map((c) => c.nationalId);
  try {
    await env.waitForRow(`SELECT 1 FROM registration WHERE national_id = ANY($1) HAVING count(*) = $2`, [ids, ids.length], 'all registrations', 90_000);
  } catch (error) {
    const [{ applied }] = await env.database.query<{ applied: number }>(`SELECT count(*)::int AS applied FROM registration WHERE national_id = ANY($1)`, [ids]);
    const views = await Promise.all(gateways.filter((g): g is StartedGateway => g !== null && g.child.exitCode === null).map(readiness)).catch(() => []);
    throw new Error(`${(error as Error).message}: ${applied} of ${ids.length} applied; partitions: ${partitionSplit(views)}`);
  }
}

beforeAll(async () => {
  env = await TestEnvironment.withoutGateway();
  // At the same moment, on an empty database: migrations run once (advisory lock), then all serve.
  await Promise.all(Array.from({ length: INSTANCES }, (_, i) => startInstance(i)));
  reader = await TopicReader.start(env.broker.brokers, [TOPICS.activations, TOPICS.ops]);
});

afterAll(async () => {
  await reader?.stop();
  await Promise.all(
    gateways.map(async (gateway) => {
      if (!gateway || gateway.child.exitCode !== null) return;
      const exited = new Promise((resolve) => gateway.child.once('exit', resolve));
      gateway.child.kill('SIGTERM');
      await exited;
    }),
  );
  await env?.stop();
});

interface Answered {
  requestId: string;
  nationalId: string;
  activationId: string;
  status: string;
  via: string;
}

it('three instances share the relay slots and partitions; one killed mid-traffic and restarted: every answered decision stored once and published, in decision order per national ID, duplicates only from the failover', async () => {
  const views = await waitForFullOwnership(30_000, true);
  log(`partitions at start: ${partitionSplit(views)}`);
  for (const view of views) expect(view.liveInstances).toBe(INSTANCES);
  // Shared out, not all on one: each instance has its share of the 16 slots.
  for (const view of views) expect(view.relaySlots.length).toBeGreaterThanOrEqual(4);
  log(`relay slots: ${views.map((v) => `${v.instanceId}=${v.relaySlots.join(',')}`).join('  ')}`);

  // Customers, registered through the shared registrations group (any instance may apply them).
  const customers = Array.from({ length: 24 }, () => ({ nationalId: newNationalId(), mobile: newMobile() }));
  for (const customer of customers) await env.publishRegistration({ ...customer, status: 'PENDING_ACTIVATION', version: 1 });
  await registered(customers);

  const answered: Answered[] = [];
  const unanswered: string[] = [];
  let stopping = false;
  let n = 0;
  // Every customer is asked for several times, through different instances and both channels.
  const http = async (worker: number) => {
    while (!stopping) {
      const index = (n + worker) % INSTANCES;
      const gateway = gateways[index];
      const customer = customers[n++ % customers.length];
      if (!gateway) {
        await sleep(20);
        continue;
      }
      const requestId = nextRequestId('aa');
      const body = { nationalId: customer.nationalId, mobile: n % 4 === 0 ? newMobile() : customer.mobile, channel: 'INTERNET_BANKING' };
      try {
        const answer = await env.send(env.pki.tsta.es256, { requestId, body, baseUrl: gateway.baseUrl });
        if (answer.status === 200) answered.push({ requestId, nationalId: customer.nationalId, activationId: String(answer.json.activationId), status: String(answer.json.status), via: `gw-${index + 1}` });
        else unanswered.push(`HTTP ${answer.status} ${answer.json.code}`);
      } catch (error) {
        unanswered.push(`HTTP to gw-${index + 1}: ${(error as Error).message}`); // the killed instance
      }
      await sleep(15);
    }
  };
  const atm = async (index: number) => {
    while (!stopping) {
      const gateway = gateways[index];
      if (!gateway) {
        await sleep(50);
        continue;
      }
      let client: AtmSwitchClient;
      try {
        client = await AtmSwitchClient.connect('127.0.0.1', gateway.isoPort, TSTA_MAC_KEY);
      } catch {
        await sleep(50);
        continue;
      }
      try {
        while (!stopping && gateways[index] === gateway) {
          const customer = customers[n++ % customers.length];
          const fields = atmActivation(customer, { rrnPrefix: 'AAX', terminal: `AAATM00${index + 1}` });
          const answer = await client.request(fields);
          if (answer.fields[39] === '00') {
            answered.push({ requestId: atmRequestId(fields), nationalId: customer.nationalId, activationId: parseTlv(answer.fields[48]).get('AI')!, status: 'ACCEPTED', via: `gw-${index + 1}` });
          } else unanswered.push(`ISO 39=${answer.fields[39]}`);
          await sleep(15);
        }
      } catch (error) {
        unanswered.push(`ISO to gw-${index + 1}: ${(error as Error).message}`);
      } finally {
        await client.close().catch(() => undefined);
      }
    }
  };
  const victim = 1;
  const victimSlots = views.find((v) => v.instanceId === `gw-${victim + 1}`)!.relaySlots;
  let killedAtDb = new Date(0);
  const traffic = Promise.all([...Array.from({ length: 6 }, (_, w) => http(w)), ...Array.from({ length: INSTANCES }, (_, i) => atm(i))]);
  try {
    await failOverUnderTraffic();
  } finally {
    stopping = true;
    await traffic;
  }
  await checkEverythingPublished();

  async function failOverUnderTraffic() {
    await sleep(3000);
    const killedAt = Date.now();
    await kill(victim);
    killedAtDb = (await env.database.query<{ now: Date }>('SELECT now()'))[0].now;
    // Failover: the survivors own every relay slot again; then, measured apart, every partition.
    const survivorViews = await waitForFullOwnership(30_000, true);
    const failoverMs = Date.now() - killedAt;
    // The development broker's group coordinator (librdkafka's mock) sometimes keeps rebalancing three
    // members that join together, so the partitions' move is measured and printed here, not asserted
    // (registrations.e2e-spec proves that a consumer killed mid-batch skips nothing).
    const partitionsMs = await waitForFullOwnership(60_000).then(
      () => `${Date.now() - killedAt} ms`,
      () => 'not within 60 s (the development broker)',
    );
    // Relay failover: when the last of the victim's slots was first taken by a survivor, from their logs
    // (later moves between survivors, as their share grows once the victim's heartbeat is stale, are rebalancing).
    const firstTaken = new Map<number, number>();
    for (const line of logs.flat()) {
      let entry: { message?: string; time?: string; slots?: number[] } | null = null;
      try {
        entry = JSON.parse(line);
      } catch {
        continue;
      }
      if (entry?.message !== 'relay slots taken' || !entry.time || Date.parse(entry.time) < killedAt) continue;
      const at = Date.parse(entry.time);
      for (const slot of entry.slots ?? []) if (victimSlots.includes(slot)) firstTaken.set(slot, Math.min(at, firstTaken.get(slot) ?? at));
    }
    expect([...firstTaken.keys()].sort((a, b) => a - b)).toEqual(victimSlots);
    const relayFailoverMs = Math.max(...firstTaken.values()) - killedAt;
    log(`killed gw-${victim + 1} (slots ${victimSlots.join(',')}); survivors own all 16 relay slots after ${failoverMs} ms (the last taken ${relayFailoverMs} ms after the kill); every partition after ${partitionsMs}`);
    expect(survivorViews.flatMap((v) => v.relaySlots).length).toBe(RELAY_SLOT_COUNT);
    // By now the victim's heartbeat is stale: the survivors count two.
    for (const gateway of gateways.filter((g): g is StartedGateway => g !== null)) expect((await readiness(gateway)).liveInstances).toBe(INSTANCES - 1);
    expect(failoverMs).toBeLessThan(30_000);
    expect(relayFailoverMs).toBeLessThan(10_000);

    await sleep(2000); // traffic on the survivors alone
    await startInstance(victim);
    await waitForFullOwnership(30_000, true); // its partitions come back at the next rebalance; the relay is what publishes
    await sleep(3000); // and on all three again
  }

  async function checkEverythingPublished() {
    const viaVictimAfter = answered.filter((a) => a.via === `gw-${victim + 1}`).length;
    log(`${answered.length} decisions answered (${viaVictimAfter} through gw-${victim + 1}, before its death or after its restart), ${unanswered.length} requests without a decision`);
    expect(answered.length).toBeGreaterThan(100);
    expect(new Set(answered.map((a) => a.via)).size).toBe(INSTANCES);
    // Requests without a decision are only those cut off by the kill; no other error.
    for (const problem of unanswered) expect(problem).toMatch(/gw-2|HTTP 200|ISO 39=(25|N[1-4])/);

    await env.settled(reader, 60_000);
    // Every answered decision is stored once, as answered.
    const stored = await env.database.query<{ request_id: string; activation_id: string; status: string }>(
      `SELECT request_id, activation_id, status FROM activation_request WHERE bank_code = 'TSTA' AND request_id = ANY($1::text[])`,
      [answered.map((a) => a.requestId)],
    );
    expect(stored.length).toBe(answered.length);
    const storedById = new Map(stored.map((row) => [row.request_id, row]));
    for (const answer of answered) expect(storedById.get(answer.requestId)).toMatchObject({ activation_id: answer.activationId, status: answer.status });

    // Every one is published.
    const events = reader.on(TOPICS.activations);
    const published = new Set(events.map((r) => String(r.event.data.activationId)));
    expect(answered.filter((a) => !published.has(a.activationId)).map((a) => a.requestId)).toEqual([]);

    // Duplicates (the same CloudEvent id twice) only for events in flight when the instance died:
    // written before the kill, in a slot the victim owned.
    const seen = new Map<string, number>();
    for (const record of [...events, ...reader.on(TOPICS.ops)]) seen.set(`${record.topic}/${record.event.id}`, (seen.get(`${record.topic}/${record.event.id}`) ?? 0) + 1);
    const duplicated = [...seen].filter(([, count]) => count > 1).map(([key]) => key.slice(key.indexOf('/') + 1));
    const duplicateRows = await env.database.query<{ id: string; slot: number; created_at: Date }>(
      `SELECT id, slot, created_at FROM outbox_event WHERE (payload::jsonb ->> 'id') = ANY($1::text[])`,
      [duplicated],
    );
    log(`${duplicated.length} events published twice, all from the failover`);
    for (const row of duplicateRows) {
      expect(victimSlots).toContain(row.slot);
      expect(row.created_at.getTime()).toBeLessThanOrEqual(killedAtDb.getTime() + 1000);
  }

  // Per national ID, first deliveries in decision order.
  const decided = await env.database.query<{ national_id: string; activation_id: string }>(
    `SELECT a.national_id, a.activation_id FROM activation_request a
       JOIN outbox_event o ON o.topic = $1 AND (o.payload::jsonb -> 'data' ->> 'activationId') = a.activation_id::text
      WHERE a.bank_code = 'TSTA' ORDER BY o.id`,
    [TOPICS.activations],
  );
  const firstSeen = new Map<string, string[]>();
  for (const record of events) {
    const order = firstSeen.get(record.key!) ?? [];
    if (!order.includes(String(record.event.data.activationId))) order.push(String(record.event.data.activationId));
    firstSeen.set(record.key!, order);
  }
  for (const customer of customers) {
    expect({ nationalId: customer.nationalId, order: firstSeen.get(customer.nationalId) ?? [] }).toEqual({
      nationalId: customer.nationalId,
      order: decided.filter((d) => d.national_id === customer.nationalId).map((d) => d.activation_id),
    });
  }

  // The registry knows all three, alive.
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'instances', 'list'], { env: { PATH: process.env.PATH ?? '', ...env.gatewayEnv() } });
  for (let i = 1; i <= INSTANCES; i++) expect(stdout).toMatch(new RegExp(`gw-${i} .* alive`));
  }
});

it('a rolling restart under load, one instance at a time behind a load balancer that follows /health/ready: every request answered, nothing lost, no event published twice', async () => {
  await waitForFullOwnership(30_000, true); // relay slots only: partitions of a stopped member wait for its session here (see below)
  const customers = Array.from({ length: 12 }, () => ({ nationalId: newNationalId(), mobile: newMobile() }));
  for (const customer of customers) await env.publishRegistration({ ...customer, status: 'PENDING_ACTIVATION', version: 1 });
  await registered(customers);

  // The load balancer: an instance is in rotation while its /health/ready answers 200 (checked every 200 ms).
  const inRotation = gateways.map(() => true);
  let stopping = false;
  const checks = Promise.all(
    gateways.map(async (_, index) => {
      while (!stopping) {
        const gateway = gateways[index];
        inRotation[index] = gateway !== null && (await fetch(`${gateway.baseUrl}/health/ready`, { signal: AbortSignal.timeout(500) }).then((r) => r.status === 200, () => false));
        await sleep(200);
      }
    }),
  );
  const pick = (n: number) => {
    const live = gateways.map((g, i) => (inRotation[i] && g ? g : null)).filter((g): g is StartedGateway => g !== null);
    return live.length ? live[n % live.length] : null;
  };
  const answered: Array<{ requestId: string; activationId: string }> = [];
  const failed: string[] = [];
  let n = 0;
  const http = async () => {
    while (!stopping) {
      const gateway = pick(n++);
      const customer = customers[n % customers.length];
      if (!gateway) {
        await sleep(20);
        continue;
      }
      const requestId = nextRequestId('roll');
      try {
        const answer = await env.send(env.pki.tsta.es256, { requestId, body: { nationalId: customer.nationalId, mobile: customer.mobile, channel: 'INTERNET_BANKING' }, baseUrl: gateway.baseUrl });
        if (answer.status === 200) answered.push({ requestId, activationId: String(answer.json.activationId) });
        else failed.push(`HTTP ${answer.status} ${answer.json.code}`);
      } catch (error) {
        failed.push(`HTTP: ${(error as Error).message}`);
      }
      await sleep(10);
    }
  };
  // An ATM switch keeps its connection while the instance is in rotation, then reconnects through the balancer.
  const atm = async (worker: number) => {
    while (!stopping) {
      const gateway = pick(n++ + worker);
      if (!gateway) {
        await sleep(20);
        continue;
      }
      const index = gateways.indexOf(gateway);
      const client = await AtmSwitchClient.connect('127.0.0.1', gateway.isoPort, TSTA_MAC_KEY);
      try {
        while (!stopping && inRotation[index] && gateways[index] === gateway) {
          const customer = customers[n++ % customers.length];
          const fields = atmActivation(customer, { rrnPrefix: 'ROL', terminal: `ROLATM0${worker}` });
          const answer = await client.request(fields);
          if (answer.fields[39] === '00') answered.push({ requestId: atmRequestId(fields), activationId: parseTlv(answer.fields[48]).get('AI')! });
          else if (!['25', 'N1', 'N2', 'N3', 'N4'].includes(answer.fields[39])) failed.push(`ISO 39=${answer.fields[39]}`);
          await sleep(10);
        }
      } catch (error) {
        failed.push(`ISO: ${(error as Error).message}`);
      } finally {
        await client.close().catch(() => undefined);
      }
    }
  };
  const traffic = Promise.all([...Array.from({ length: 4 }, http), atm(1), atm(2)]);
  try {
    await sleep(1500);
    for (let index = 0; index < INSTANCES; index++) {
      const gateway = gateways[index]!;
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => gateway.child.once('exit', (code, signal) => resolve({ code, signal })));
      gateway.child.kill('SIGTERM');
      const ended = await exited;
      expect(ended.code === 0 || ended.signal === 'SIGTERM').toBe(true);
      gateways[index] = null;
      await startInstance(index);
      // Relay slots only: the development broker answers LeaveGroup with an error kafkajs cannot read,
      // so a stopped member's partitions wait for its session to expire (with Apache Kafka they move at once).
      await waitForFullOwnership(30_000, true);
      await sleep(1000);
    }
  } finally {
    stopping = true;
    await Promise.all([traffic, checks]);
  }
  log(`rolling restart: ${answered.length} decisions answered, ${failed.length} requests failed`);
  expect(failed).toEqual([]);
  expect(answered.length).toBeGreaterThan(100);

  await env.settled(reader, 60_000);
  const stored = await env.database.query<{ request_id: string }>(`SELECT request_id FROM activation_request WHERE bank_code = 'TSTA' AND request_id = ANY($1::text[])`, [answered.map((a) => a.requestId)]);
  expect(stored.length).toBe(answered.length);
  // Handed over, not failed over: each event exactly once.
  const ids = new Set(answered.map((a) => a.activationId));
  const events = reader.on(TOPICS.activations).filter((r) => ids.has(String(r.event.data.activationId)));
  expect(new Set(events.map((r) => String(r.event.data.activationId))).size).toBe(ids.size);
  expect(events.length).toBe(ids.size);
});

it("a bank limited to 100/s, offered 300/s spread over three instances, gets at most 110/s; the limit holds and is used up again after an instance dies", async () => {
  await waitForFullOwnership(30_000, true); // relay slots only: partitions of a stopped member wait for its session here (see below)
  // Through the CLI: applied by every running instance without a restart.
  await promisify(execFile)(process.execPath, [CLI, 'banks', 'set-rate', '--bank', 'TSTB', '--rate', '100'], { env: { PATH: process.env.PATH ?? '', ...env.gatewayEnv() } });
  await sleep(3000);

  /**
   * Open loop: 300 requests a second whatever the answers, round robin over
   * the live instances. The rate accepted is read from the decisions' own
   * times in the database (a refused request is not stored), over the
   * seconds after the warm-up: what the gateways let through, whatever the
   * delays of a busy test machine on the client's side.
   */
  async function offer(seconds: number, warmupSeconds: number): Promise<{ acceptedPerSecond: number; offeredPerSecond: number; stalled: boolean; other: string[] }> {
    const other: string[] = [];
    const pending: Promise<void>[] = [];
    const [{ now: startedAt }] = await env.database.query<{ now: Date }>('SELECT now()');
    const start = performance.now();
    const total = Math.round((seconds + warmupSeconds) * 300);
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / 300;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      const live = gateways.filter((g): g is StartedGateway => g !== null);
      const gateway = live[i % live.length];
      pending.push(
        env
          .send(env.pki.tstb.es256, { requestId: nextRequestId('rl'), body: { nationalId: newNationalId(), mobile: newMobile(), channel: 'PHONE_BANKING' }, baseUrl: gateway.baseUrl })
          .then((answer) => {
            if (answer.status !== 200 && answer.status !== 429) other.push(`${answer.status} ${answer.json.code}`);
          }),
      );
    }
    const sendingSeconds = (performance.now() - start) / 1000;
    await Promise.all(pending);
    const decided = await env.database.query<{ at: number }>(
      `SELECT extract(epoch FROM decided_at - $1::timestamptz)::float AS at FROM activation_request WHERE bank_code = 'TSTB' AND decided_at > $1::timestamptz + make_interval(secs => $2) ORDER BY decided_at`,
      [startedAt, warmupSeconds],
    );
    const windowSeconds = Math.max(1, decided[decided.length - 1].at - warmupSeconds);
    const acceptedPerSecond = decided.length / windowSeconds;
    const offeredPerSecond = total / sendingSeconds;
    const perSecond = new Map<number, number>();
    for (const row of decided) perSecond.set(Math.floor(row.at), (perSecond.get(Math.floor(row.at)) ?? 0) + 1);
    log(
      `offered ${offeredPerSecond.toFixed(0)}/s for ${sendingSeconds.toFixed(1)} s; accepted after the warm-up: ${decided.length} in ${windowSeconds.toFixed(1)} s = ${acceptedPerSecond.toFixed(1)}/s ` +
        `(per second from the start: ${[...perSecond].map(([second, count]) => `${second}s:${count}`).join(' ')})`,
    );
    // A whole second without a decision while requests were queued is the machine stalling (another
    // test file hogging both cores): the requests then reach the limiter in bursts, and a bucket that
    // holds at most a second's worth refuses most of each burst, however the budget is shared.
    const seconds_ = [...perSecond.keys()];
    const stalled = seconds_.length > 0 && seconds_.some((second, i) => i > 0 && second - seconds_[i - 1] > 1);
    return { acceptedPerSecond, offeredPerSecond, stalled, other };
  }

  // After a warm-up of 1.5 s (the bank's one-second burst is spent there), five seconds measured.
  const three = await offer(5, 1.5);
  expect(three.other).toEqual([]);
  expect(three.acceptedPerSecond).toBeLessThanOrEqual(110);
  if (three.stalled) log('the machine stalled during the measurement: the lower bound is not checked');
  else expect(three.acceptedPerSecond).toBeGreaterThanOrEqual(80);

  await kill(2);
  const two = await offer(5, 1.5);
  expect(two.other).toEqual([]);
  expect(two.acceptedPerSecond).toBeLessThanOrEqual(110);
  // The dead instance's share is not lost: the survivors use the whole budget (a fixed third each would give 67/s).
  if (two.stalled) log('the machine stalled during the measurement: the lower bound is not checked');
  else expect(two.acceptedPerSecond).toBeGreaterThanOrEqual(80);
});
