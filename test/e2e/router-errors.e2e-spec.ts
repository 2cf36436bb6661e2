import { connect } from 'node:net';
import { parseDetachedJws, verifyDetachedSignature } from '../../libs/jws';
import { BankSigningIdentity } from '../../libs/jws/request-signing';
import { expectContract } from '../support/contracts';
import { localSpelling, newMobile, newNationalId } from '../support/identities';
import { TestEnvironment } from '../support/test-environment';

/**
 * Issue 10, item 7: what goes wrong before Nest routes a request (a URL the
 * router cannot read, a path segment over the router's limit, no Host, a
 * method or path no route has) is answered like any other error: a signed
 * application/problem+json with a stable code, echoing nothing the caller
 * sent (no path, no header value, not its X-Request-Id). An honest bank is
 * served meanwhile.
 */
let env: TestEnvironment;
let port: number;
let sequence = 0;
const nextRequestId = () => `router-${process.pid}-${++sequence}`;

beforeAll(async () => {
  env = await TestEnvironment.start();
  port = Number(new URL(env.baseUrl).port);
});

afterAll(async () => {
  await env?.stop();
});

const bank = (): BankSigningIdentity => env.pki.tsta.es256;

/** Values sent in headers: none may come back in the answer's body. */
const MARKER_HEADERS = { 'x-bank-id': 'ZZQX', 'x-request-id': 'echo-marker-7f3a9c', 'user-agent': 'echo-agent-51d2e8' };

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Sends `head` on its own connection (`Connection: close`) and reads the whole answer. */
function sendRaw(head: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const received = Buffer.concat(chunks);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return reject(new Error(`no complete answer: ${JSON.stringify(received.toString('latin1').slice(0, 200))}`));
      const [statusLine, ...lines] = received.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers['content-length']);
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: received.subarray(end + 4, end + 4 + length) });
    });
  });
}

function requestHead(method: string, target: string, headers: Record<string, string>, version = 'HTTP/1.1'): string {
  return `${method} ${target} ${version}\r\n${Object.entries({ ...headers, connection: 'close' }).map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`;
}

/**
 * The answer is a problem with this status and code, signed by the gateway
 * (its key, its kid, a jti of its own rather than the caller's request id),
 * and its body holds neither the path nor any header value sent.
 */
async function expectHouseProblem(answer: RawAnswer, status: number, code: string, sent: { path: string; method: string }): Promise<void> {
  const text = answer.body.toString('utf8');
  expect({ status: answer.status, contentType: answer.headers['content-type'] }).toEqual({ status, contentType: expect.stringMatching(/^application\/problem\+json/) });
  const problem = JSON.parse(text) as Record<string, unknown>;
  expect(problem).toMatchObject({ status, code, requestId: null });
  expect(problem).not.toHaveProperty('instance');
  expectContract('schemas/http/problem.schema.json', problem);

  const signature = answer.headers['x-jws-signature'];
  expect(signature).toBeDefined();
  const jws = parseDetachedJws(signature);
  await verifyDetachedSignature(jws, answer.body, env.pki.gatewayPublicKey);
  expect(jws.header).toMatchObject({ kid: env.pki.gatewayKeyId, htm: sent.method });
  expect(String(jws.header.jti)).toMatch(/^gateway-/);

  for (const value of Object.values(MARKER_HEADERS)) expect(text).not.toContain(value);
  // The path, whole or any distinctive segment of it.
  for (const segment of sent.path.split('/').filter((part) => part.length > 3 && part !== 'activations')) expect(text).not.toContain(segment);
  expect(text).not.toContain(sent.path);
}

/** An honest bank's request, answered 200 with a decision (not registered: REJECTED). */
async function honestPost(): Promise<{ status: number; requestId: unknown }> {
  const requestId = nextRequestId();
  const answer = await env.send(bank(), { requestId, body: { nationalId: newNationalId(), mobile: localSpelling(newMobile()), channel: 'INTERNET_BANKING' } });
  return { status: answer.status, requestId: answer.json.requestId };
}

describe('errors before routing are signed problems that echo nothing', () => {
  it('a 7 KB GET path (a path segment over the router limit): 400 MALFORMED_REQUEST, not a 414 quoting the URL', async () => {
    const path = `/v1/activations/${'q7'.repeat(3584)}`;
    const answer = await sendRaw(requestHead('GET', path, { host: '127.0.0.1', ...MARKER_HEADERS }));
    await expectHouseProblem(answer, 400, 'MALFORMED_REQUEST', { path, method: 'GET' });
    expect(answer.body.length).toBeLessThan(512);
  });

  it('a 7 KB path no route has: 404 NOT_FOUND without the path', async () => {
    const path = `/v1/${'w9'.repeat(3584)}`;
    const answer = await sendRaw(requestHead('POST', path, { host: '127.0.0.1', 'content-length': '0', ...MARKER_HEADERS }));
    await expectHouseProblem(answer, 404, 'NOT_FOUND', { path, method: 'POST' });
    expect(answer.body.length).toBeLessThan(512);
  });

  it('a bad percent-encoding (/v1/activations/%ZZ): 400 MALFORMED_REQUEST, not FST_ERR_BAD_URL', async () => {
    const path = '/v1/activations/%ZZmarker';
    const answer = await sendRaw(requestHead('GET', path, { host: '127.0.0.1', ...MARKER_HEADERS }));
    await expectHouseProblem(answer, 400, 'MALFORMED_REQUEST', { path, method: 'GET' });
    expect(answer.body.toString()).not.toMatch(/FST_|%ZZ/);
  });

  it('an HTTP/1.1 request without Host: 400 MALFORMED_REQUEST, signed (not a bare 400)', async () => {
    const path = '/v1/activations/nohost-marker';
    const answer = await sendRaw(requestHead('GET', path, MARKER_HEADERS));
    await expectHouseProblem(answer, 400, 'MALFORMED_REQUEST', { path, method: 'GET' });
  });

  it('two Host headers: 400 MALFORMED_REQUEST', async () => {
    const path = '/v1/activations';
    const answer = await sendRaw(requestHead('POST', path, { host: 'first-host-marker', Host: 'second-host-marker', 'content-length': '0', ...MARKER_HEADERS }));
    await expectHouseProblem(answer, 400, 'MALFORMED_REQUEST', { path, method: 'POST' });
    expect(answer.body.toString()).not.toMatch(/host-marker/);
  });

  it('a method no route has (PROPFIND /v1/activations): 404 NOT_FOUND, as for any path no route has', async () => {
    const path = '/v1/activations';
    const answer = await sendRaw(requestHead('PROPFIND', path, { host: '127.0.0.1', ...MARKER_HEADERS }));
    await expectHouseProblem(answer, 404, 'NOT_FOUND', { path, method: 'PROPFIND' });
    expect(answer.body.toString()).not.toContain('PROPFIND');
  });

  it('an unknown route (GET /v2/unknown-route-marker?q=query-marker): 404 NOT_FOUND without the path or query', async () => {
    const path = '/v2/unknown-route-marker';
    const answer = await sendRaw(requestHead('GET', `${path}?q=query-marker`, { host: '127.0.0.1', ...MARKER_HEADERS }));
    await expectHouseProblem(answer, 404, 'NOT_FOUND', { path, method: 'GET' });
    expect(answer.body.toString()).not.toContain('query-marker');
  });

  it('an honest signed POST sent meanwhile is served', async () => {
    const longPath = `/v1/activations/${'z'.repeat(7000)}`;
    const hostile = Array.from({ length: 20 }, (_, i) =>
      sendRaw(
        [
          requestHead('GET', longPath, { host: '127.0.0.1' }),
          requestHead('GET', '/v1/activations/%ZZ', { host: '127.0.0.1' }),
          requestHead('GET', '/v1/activations/x', {}),
          requestHead('PROPFIND', '/v1/activations', { host: '127.0.0.1' }),
        ][i % 4],
      ),
    );
    const honest = [honestPost(), honestPost(), honestPost()];
    const statuses = (await Promise.all(hostile)).map((answer) => answer.status);
    expect(new Set(statuses)).toEqual(new Set([400, 404]));
    for (const served of await Promise.all(honest)) expect(served).toEqual({ status: 200, requestId: expect.stringMatching(/^router-/) });
  });
});
