import { existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Browser, chromium, Page } from 'playwright-core';
import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { atmActivation, TSTA_MAC_KEY } from '../support/atm-requests';
import { expectOpenApiSchema } from '../support/contracts';
import { newMobile, newNationalId } from '../support/identities';
import { OPS_TOKEN, TestEnvironment } from '../support/test-environment';

/**
 * The live operations page (issue 4, acceptance 5) in headless Chromium:
 * mixed traffic on every channel goes in; the page, fed only by the
 * gateway's own consumer of the ops topic, shows each bank and channel
 * with the outcomes that were sent; and the deployment: the instances
 * sharing the database and the parked outbox events.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let env: TestEnvironment;
let browser: Browser;
const sentIdentities: string[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not installed at ${CHROMIUM}: apt-get install chromium (.ci/run does), or set CHROMIUM_PATH`);
  [env, browser] = await Promise.all([
    TestEnvironment.start(),
    chromium.launch({ executablePath: CHROMIUM, args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] }),
  ]);
  await waitUntilLive();
});

afterAll(async () => {
  await browser?.close();
  await env?.stop();
});

async function snapshot(token: string | null = OPS_TOKEN): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${env.baseUrl}/ops/snapshot`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** The view consumer has joined and positioned itself: every event from now on reaches the page. */
async function waitUntilLive(): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if ((await snapshot()).body.live === true) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the ops view consumer never became live');
}

async function registered(): Promise<{ nationalId: string; mobile: string }> {
  const customer = { nationalId: newNationalId(), mobile: newMobile() };
  await env.register(customer.nationalId, customer.mobile, 'PENDING_ACTIVATION');
  sentIdentities.push(customer.nationalId, customer.mobile);
  return customer;
}

async function sendJson(bank: 'tsta' | 'tstb', channel: string, body: { nationalId: string; mobile: string }, expectedStatus: number): Promise<void> {
  const requestId = `ops-page-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const answer = await env.send(env.pki[bank].es256, { requestId, body: { ...body, channel } });
  expect({ requestId, status: answer.status }).toEqual({ requestId, status: expectedStatus });
}

type Expected = Record<string, { ACCEPTED: number; REJECTED: number; ERROR: number }>;

/** What the page shows per bank/channel, read from the rendered DOM. */
async function shown(page: Page): Promise<Expected> {
  return page.$$eval('[data-series]', (rows) =>
    Object.fromEntries(
      rows.map((row) => [
        row.getAttribute('data-series')!,
        Object.fromEntries(['ACCEPTED', 'REJECTED', 'ERROR'].map((o) => [o, Number(row.querySelector(`[data-outcome="${o}"]`)?.textContent)])),
      ]),
    ),
  ) as Promise<Expected>;
}

it('needs the operator token: refused without it, with a wrong one, and for the stream', async () => {
  expect((await snapshot(null)).status).toBe(401);
  expect((await snapshot('not-the-operator-token')).status).toBe(401);
  const stream = await fetch(`${env.baseUrl}/ops/stream`);
  expect(stream.status).toBe(401);
  expect(stream.headers.get('www-authenticate')).toBe('Bearer realm="absher-ops"');

  const page = await browser.newPage();
  try {
    const first = await page.goto(`${env.baseUrl}/ops`);
    expect(first!.status()).toBe(401);
    await page.fill('input[name="token"]', 'not-the-operator-token');
    await page.click('button[type="submit"]');
    await page.waitForSelector('text=That token is not the operator token.');
    expect(await page.locator('#series-list').count()).toBe(0);
  } finally {
    await page.close();
  }
});

it('after mixed traffic on every channel, shows each bank and channel with the outcomes sent, as charts', async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  try {
    // Sign in as an operator would, before the traffic: the page must update live, not only on load.
    await page.goto(`${env.baseUrl}/ops`);
    await page.fill('input[name="token"]', OPS_TOKEN);
    await Promise.all([page.waitForURL(`${env.baseUrl}/ops`), page.click('button[type="submit"]')]);
    await page.waitForSelector('#status[data-state="live"]');
    await page.waitForSelector('text=No requests handled in the last 15 minutes.');

    const expected: Expected = {
      'TSTA/INTERNET_BANKING': { ACCEPTED: 3, REJECTED: 3, ERROR: 0 },
      'TSTB/PHONE_BANKING': { ACCEPTED: 2, REJECTED: 0, ERROR: 2 },
      'TSTA/ATM': { ACCEPTED: 2, REJECTED: 1, ERROR: 0 },
    };
    for (let i = 0; i < 3; i++) await sendJson('tsta', 'INTERNET_BANKING', await registered(), 200);
    for (let i = 0; i < 2; i++) await sendJson('tsta', 'INTERNET_BANKING', { ...(await registered()), mobile: newMobile() }, 200); // MOBILE_MISMATCH
    await sendJson('tsta', 'INTERNET_BANKING', { nationalId: newNationalId(), mobile: newMobile() }, 200); // NOT_REGISTERED
    for (let i = 0; i < 2; i++) await sendJson('tstb', 'PHONE_BANKING', await registered(), 200);
    for (let i = 0; i < 2; i++) await sendJson('tstb', 'PHONE_BANKING', { nationalId: '1234567890', mobile: newMobile() }, 400); // INVALID_NATIONAL_ID
    const atm = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, TSTA_MAC_KEY);
    try {
      for (let i = 0; i < 2; i++) {
        const customer = await registered();
        expect((await atm.request(atmActivation(customer))).fields[39]).toBe('00');
      }
      expect((await atm.request(atmActivation({ nationalId: newNationalId(), mobile: newMobile() }))).fields[39]).toBe('25'); // not registered
    } finally {
      await atm.close();
    }

    // The page converges on exactly what was sent, through Kafka and the stream.
    await page
      .waitForFunction(
        (want) => {
          // Runs in the page; this project's TypeScript has no DOM library, so the little it uses is typed here.
          type Row = { getAttribute(name: string): string | null; querySelector(selector: string): { textContent: string | null } | null };
          const page = globalThis as unknown as { document: { querySelectorAll(selector: string): ArrayLike<Row> } };
          const rows = Array.from(page.document.querySelectorAll('[data-series]'));
          return Object.entries(want).every(([series, counts]) => {
            const row = rows.find((r) => r.getAttribute('data-series') === series);
            return row && Object.entries(counts).every(([o, n]) => row.querySelector(`[data-outcome="${o}"]`)?.textContent === String(n));
          });
        },
        expected,
        { timeout: 30_000 },
      )
      .catch(async (error) => {
        throw new Error(`the page did not show what was sent: ${JSON.stringify(await shown(page))} (${(error as Error).message})`);
      });
    expect(await shown(page)).toEqual(expected);

    // Charts, not tables: one line per bank and channel, stacked outcome columns, causes by name.
    expect(await page.locator('#chart-throughput svg path').count()).toBe(3);
    expect(await page.locator('#chart-latency svg path').count()).toBe(3);
    expect(await page.locator('#chart-outcomes svg rect').count()).toBeGreaterThanOrEqual(1);
    for (const legend of ['TSTA · Internet banking', 'TSTB · Phone banking', 'TSTA · ATM']) await expect(page.locator('#chart-throughput .legend').innerText()).resolves.toContain(legend);
    const causes = await page.locator('#chart-causes').innerText();
    for (const cause of ['MOBILE_MISMATCH', 'NOT_REGISTERED', 'INVALID_NATIONAL_ID']) expect(causes).toContain(cause);
    expect(await page.locator('#kpi-accepted').innerText()).toBe('7');

    // The deployment: this gateway alive with every relay slot (it is alone), and no parked event yet.
    const ready = await fetch(`${env.managementUrl}/health/ready`);
    const instanceId = ((await ready.json()) as { details: { instance: { instanceId: string } } }).details.instance.instanceId;
    expect(instanceId).toMatch(/-[0-9]+$/); // hostname-pid, the default GATEWAY_INSTANCE_ID
    const row = `#instance-rows tr[data-instance="${instanceId}"]`;
    await page.waitForFunction((selector) => {
      // Runs in the page, typed here as above.
      type Row = { getAttribute(name: string): string | null; querySelector(selector: string): { textContent: string | null } | null };
      const found = (globalThis as unknown as { document: { querySelector(selector: string): Row | null } }).document.querySelector(selector);
      return found?.getAttribute('data-state') === 'alive' && found.querySelector('[data-slots]')?.textContent === '16';
    }, row);
    expect(await page.locator('#instance-rows tr').count()).toBe(1);
    expect(await page.locator(row).innerText()).toContain(instanceId);
    expect(await page.locator('#deployment-summary').innerText()).toBe('1 instance alive');
    expect(await page.locator('#parked').getAttribute('class')).not.toContain('warning');

    // An event Kafka kept refusing, parked as the relay parks one: the page warns and says what to run.
    await env.database.query(
      `INSERT INTO outbox_event (topic, message_key, payload, parked_at, next_attempt_at, attempts, last_error)
       VALUES ('absher.gateway.ops.v1', 'TSTA', '{"id":"x","type":"t"}', now(), 'infinity', 10, 'UNKNOWN_TOPIC_OR_PARTITION: test')`,
    );
    await page.waitForSelector('#parked.warning[data-parked="1"]', { timeout: 10_000 });
    expect(await page.locator('#parked-count').innerText()).toBe('1');
    const hint = await page.locator('#parked-hint').innerText();
    expect(hint).toContain('npm run cli -- outbox parked');
    expect(hint).toContain('npm run cli -- outbox requeue');

    // The same window and deployment as JSON, as contracts/openapi.yaml describes them.
    const { status, body } = await snapshot();
    expect(status).toBe(200);
    expectOpenApiSchema('OpsSnapshot', body);
    expect((body.series as { bankCode: string; channel: string }[]).map((s) => `${s.bankCode}/${s.channel}`).sort()).toEqual(Object.keys(expected).sort());
    expect(body.deployment).toMatchObject({ liveInstances: 1, parkedEvents: 1, stale: false, instances: [{ instanceId, live: true, relaySlots: Array.from({ length: 16 }, (_, slot) => slot) }] });

    // No personal data reaches the page (the ops topic carries none).
    const html = await page.content();
    for (const value of sentIdentities) expect(html).not.toContain(value.replace(/^\+966/, ''));
    expect(pageErrors).toEqual([]);

    const screenshot = process.env.OPS_SCREENSHOT ?? join(tmpdir(), 'absher-ops-page.png');
    mkdirSync(dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
  } finally {
    await page.close();
  }
});

it('shows every cause: past eight, the least frequent share one "other" row that lists them', async () => {
  // On top of the three causes of the traffic above: six more, from TSTB's phone banking (TSTA's ops events
  // wait behind the event parked above, as a parked event holds back its key).
  const send = (overrides: Record<string, unknown>, options: { body?: Record<string, unknown>; headers?: Record<string, string> } = {}) =>
    env.send(env.pki.tstb.es256, {
      requestId: `ops-causes-${Date.now()}-${Math.random().toString(36).slice(2)}`,
      body: { nationalId: newNationalId(), mobile: newMobile(), channel: 'PHONE_BANKING', ...options.body },
      overrides,
      headers: options.headers,
    });
  const codes = [
    (await send({}, { body: { mobile: '0112345678' } })).json.code, // INVALID_MOBILE
    (await send({}, { body: { channel: 'BRANCH' } })).json.code, // INVALID_CHANNEL
    (await send({}, { body: { extra: true } })).json.code, // MALFORMED_REQUEST
    (await send({ iat: Math.floor(Date.now() / 1000) - 3600 })).json.code, // STALE_REQUEST
    (await send({ iss: 'TSTA' })).json.code, // SIGNATURE_INVALID
    (await send({}, { headers: { 'x-jws-signature': '' } })).json.code, // SIGNATURE_MISSING
  ];
  expect(new Set(codes)).toEqual(new Set(['INVALID_MOBILE', 'INVALID_CHANNEL', 'MALFORMED_REQUEST', 'STALE_REQUEST', 'SIGNATURE_INVALID', 'SIGNATURE_MISSING']));
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  try {
    await page.goto(`${env.baseUrl}/ops`);
    await page.fill('input[name="token"]', OPS_TOKEN);
    await Promise.all([page.waitForURL(`${env.baseUrl}/ops`), page.click('button[type="submit"]')]);
    // Nine causes in the window: seven by name, then "other (2 causes)", whose tooltip names both.
    await page.waitForSelector('#chart-causes [data-cause="other (2 causes)"]', { timeout: 30_000 }).catch(async (error) => {
      throw new Error(`causes shown: ${await page.locator('#chart-causes').innerHTML()} (${(error as Error).message.split('\n')[0]})`);
    });
    const rows = await page.locator('#chart-causes [data-cause]').evaluateAll((nodes) => nodes.map((n) => (n as unknown as { getAttribute(name: string): string }).getAttribute('data-cause')));
    expect(rows).toHaveLength(8);
    expect(rows[7]).toBe('other (2 causes)');
    const listed = await page.locator('#chart-causes [data-cause="other (2 causes)"] title').textContent();
    const named = [...rows.slice(0, 7), ...listed!.split(', ').map((entry) => entry.split(' ')[0])];
    expect(new Set(named)).toEqual(new Set(['MOBILE_MISMATCH', 'NOT_REGISTERED', 'INVALID_NATIONAL_ID', ...codes]));
  } finally {
    await page.close();
  }
});

/** POST /ops/login as the form does, without following the redirect. */
async function login(token: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${env.baseUrl}/ops/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ token }).toString(),
    redirect: 'manual',
  });
}

it('sessions: a new one per sign-in, 8 h, HttpOnly and Strict (Secure behind TLS); signing out with the button ends it', async () => {
  const first = (await login(OPS_TOKEN)).headers.get('set-cookie')!;
  const second = (await login(OPS_TOKEN, { 'x-forwarded-proto': 'https' })).headers.get('set-cookie')!;
  expect(first).toMatch(/^absher_ops_session=[^;]+; Path=\/ops; HttpOnly; SameSite=Strict; Max-Age=28800$/);
  expect(second).toMatch(/; Max-Age=28800; Secure$/);
  expect(first.split(';')[0]).not.toBe(second.split(';')[0]);

  const page = await browser.newPage();
  try {
    await page.goto(`${env.baseUrl}/ops`);
    await page.fill('input[name="token"]', OPS_TOKEN);
    await Promise.all([page.waitForURL(`${env.baseUrl}/ops`), page.click('button[type="submit"]')]);
    await page.waitForSelector('#status[data-state="live"]');
    const session = (await page.context().cookies()).find((c) => c.name === 'absher_ops_session')!;
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/ops' });
    const cookie = `absher_ops_session=${session.value}`;
    expect((await fetch(`${env.baseUrl}/ops/snapshot`, { headers: { cookie } })).status).toBe(200);

    await Promise.all([page.waitForURL(`${env.baseUrl}/ops`), page.click('#sign-out')]);
    await page.waitForSelector('input[name="token"]');
    expect(await page.locator('#series-list').count()).toBe(0);
    expect((await page.context().cookies()).find((c) => c.name === 'absher_ops_session')).toBeUndefined();

    // The old cookie, replayed: refused everywhere on this instance.
    const replayed = await fetch(`${env.baseUrl}/ops/snapshot`, { headers: { cookie } });
    expect(replayed.status).toBe(401);
    expect(replayed.headers.get('www-authenticate')).toBe('Bearer realm="absher-ops"');
    expect((await fetch(`${env.baseUrl}/ops/stream`, { headers: { cookie } })).status).toBe(401);
    expect((await fetch(`${env.baseUrl}/ops`, { headers: { cookie } })).status).toBe(401);
    // Other sessions are not ended by it.
    expect((await fetch(`${env.baseUrl}/ops/snapshot`, { headers: { cookie: first.split(';')[0] } })).status).toBe(200);
  } finally {
    await page.close();
  }
});

it('sign-in is throttled: after 5 wrong tokens in a minute, 429 with Retry-After, even for the right token; Bearer access goes on', async () => {
  expect((await login(OPS_TOKEN)).status).toBe(303); // a success clears earlier typos from this address
  for (let i = 0; i < 5; i++) expect((await login(`wrong-token-${i}`)).status).toBe(401);
  const throttled = await login('wrong-token-5');
  expect(throttled.status).toBe(429);
  const retryAfter = Number(throttled.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(await throttled.text()).toContain('Too many wrong tokens from this address');
  const right = await login(OPS_TOKEN);
  expect(right.status).toBe(429);
  expect(right.headers.get('set-cookie')).toBeNull();
  expect((await snapshot()).status).toBe(200);
});

it('a page left open does not hold up a graceful shutdown; it shows the connection lost', async () => {
  const page = await browser.newPage();
  try {
    await page.setExtraHTTPHeaders({ authorization: `Bearer ${OPS_TOKEN}` });
    await page.goto(`${env.baseUrl}/ops`);
    await page.waitForSelector('#status[data-state="live"]');
    expect((await snapshot()).body.pagesConnected).toBe(1);
    expect(await env.stopGatewayGracefully()).toMatchObject({ graceful: true });
    await page.waitForSelector('#status[data-state="reconnecting"]');
  } finally {
    await page.close();
  }
});
