import { expectOpenApiSchema } from '../support/contracts';
import { TestEnvironment } from '../support/test-environment';

/** /health/ready follows the store, Kafka and the outbox (issue 4, acceptance 3). */
let env: TestEnvironment;

beforeAll(async () => {
  env = await TestEnvironment.start();
});

afterAll(async () => {
  await env?.stop();
});

async function ready() {
  const response = await fetch(`${env.managementUrl}/health/ready`);
  return { status: response.status, body: (await response.json()) as Record<string, Record<string, { status: string; message?: string }>> };
}

async function waitFor(status: number, timeoutMs = 30_000, until: (body: Record<string, any>) => boolean = () => true) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await ready();
    if (answer.status === status && until(answer.body)) return answer;
    if (Date.now() > deadline) throw new Error(`readiness stayed ${answer.status}: ${JSON.stringify(answer.body)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

it('is ready with every check up; not ready naming kafka when the broker is down; ready again when it returns', async () => {
  // Relay slots are taken in the relay's first round, just after the gateway listens.
  const up = await waitFor(200, 30_000, (body) => body.details.instance.relaySlots.length > 0);
  expect(Object.keys(up.body.details).sort()).toEqual(['instance', 'kafka', 'keys', 'lifecycle', 'outbox', 'store']);
  // The instance that answered says what it owns: alone, every relay slot, and the consumed topics' partitions.
  expect(up.body.details.instance).toMatchObject({ status: 'up', liveInstances: 1, instanceId: expect.any(String) });
  expect((up.body.details.instance as unknown as { relaySlots: number[] }).relaySlots).toEqual(Array.from({ length: 16 }, (_, slot) => slot));
  expectOpenApiSchema('HealthOk', up.body, 'management-openapi.yaml');
  await env.broker.takeDown();
  try {
    const down = await waitFor(503);
    expect(down.body.error.kafka.status).toBe('down');
    expect(down.body.error.kafka.message).toBeTruthy();
    expect(down.body.details.store.status).toBe('up');
    expectOpenApiSchema('HealthUnavailable', down.body, 'management-openapi.yaml');
    // The bank port says only that it is not ready.
    const bankPort = await fetch(`${env.baseUrl}/health/ready`);
    expect({ status: bankPort.status, body: await bankPort.json() }).toEqual({ status: 503, body: { status: 'error' } });
  } finally {
    await env.broker.bringUp();
  }
  await waitFor(200);
});

it('is not ready while the outbox falls behind its age limit', async () => {
  await env.stopGateway();
  await env.startGateway({ OUTBOX_READY_MAX_AGE_SECONDS: '2' });
  await waitFor(200);
  await env.broker.takeDown();
  try {
    await env.send(env.pki.tsta.es256, { requestId: `backlog-${Date.now()}`, body: { nationalId: '1000000008', mobile: '0512345678', channel: 'INTERNET_BANKING' } });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const down = await waitFor(503);
    // The decision and its request-handled event wait, and a minute's summary when a minute ended meanwhile.
    const outbox = down.body.error.outbox as { status: string; backlog: number };
    expect(outbox.status).toBe('down');
    expect(outbox.backlog).toBeGreaterThanOrEqual(2);
    expect(down.body.error.outbox.message).toMatch(/older than 2 s/);
  } finally {
    await env.broker.bringUp();
  }
  await waitFor(200);
});
