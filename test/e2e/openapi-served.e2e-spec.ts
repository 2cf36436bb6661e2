import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { problemLines, redocly, redoclyLint } from '../support/contracts';
import { GatewayAnswer, TestEnvironment } from '../support/test-environment';

/**
 * The bank port serves its own OpenAPI document (contracts/openapi.yaml) at
 * /openapi.json and /openapi.yaml: unauthenticated, signed like every
 * answer, and self-contained, the JSON Schemas it refers to bundled in.
 */
const ROOT = join(__dirname, '../..');

let env: TestEnvironment;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'openapi-served-'));
  env = await TestEnvironment.start();
});

afterAll(async () => {
  await env?.stop();
  rmSync(work, { recursive: true, force: true });
});

/** A GET with no credentials at all; the answer's signature is checked like a bank would. */
async function get(path: string): Promise<{ answer: GatewayAnswer; mediaType: string | undefined }> {
  const response = await fetch(`${env.baseUrl}${path}`, { headers: { 'x-request-id': `openapi-${path.slice(1)}` } });
  const body = Buffer.from(await response.arrayBuffer());
  const answer = await GatewayAnswer.read({ status: response.status, headers: Object.fromEntries(response.headers), body }, env.pki.gatewayPublicKey, env.pki.gatewayKeyId, 'GET', path);
  return { answer, mediaType: response.headers.get('content-type')?.split(';')[0] };
}

/** Every `$ref` in a document. */
function refsOf(node: unknown, refs: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((item) => refsOf(item, refs));
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') refs.push(value);
      else refsOf(value, refs);
    }
  }
  return refs;
}

const componentNames = (document: { components: Record<string, Record<string, unknown>> }) =>
  Object.fromEntries(Object.entries(document.components).map(([type, group]) => [type, Object.keys(group).sort()]));

it('serves the bank document, bundled as Redocly bundles it, self-contained, signed, in JSON and YAML; Redocly lints it clean', async () => {
  const json = await get('/openapi.json');
  expect(json.answer.status).toBe(200);
  expect(json.mediaType).toBe('application/json');
  const served = json.answer.json as { openapi: string; paths: Record<string, unknown>; components: Record<string, Record<string, unknown>> };

  const yaml = await get('/openapi.yaml');
  expect(yaml.answer.status).toBe(200);
  expect(yaml.mediaType).toBe('application/yaml');
  expect(parse(yaml.answer.text)).toEqual(served);

  // The same document as contracts/openapi.yaml bundled by Redocly: the same paths and the same components, by name.
  const bundledFile = join(work, 'redocly-bundle.json');
  const bundling = await redocly(ROOT, ['bundle', 'contracts/openapi.yaml', '--ext=json', `--output=${bundledFile}`]);
  expect({ exitCode: bundling.exitCode, stderr: bundling.stderr.includes('NETWORK ATTEMPT') ? bundling.stderr : '' }).toEqual({ exitCode: 0, stderr: '' });
  const bundled = JSON.parse(readFileSync(bundledFile, 'utf8')) as typeof served;
  expect(served.openapi).toBe(bundled.openapi);
  expect(Object.keys(served.paths).sort()).toEqual(Object.keys(bundled.paths).sort());
  expect(componentNames(served)).toEqual(componentNames(bundled));
  // It lists itself.
  expect(served.paths).toHaveProperty(['/openapi.json']);
  expect(served.paths).toHaveProperty(['/openapi.yaml']);

  // Self-contained: every $ref is a JSON pointer into the document, and it points at something.
  const refs = refsOf(served);
  expect(refs.filter((ref) => ref.startsWith('#/components/schemas/')).length).toBeGreaterThan(10);
  for (const ref of refs) {
    let target: unknown = ref.startsWith('#/') ? served : undefined;
    for (const segment of ref.slice(2).split('/')) target = (target as Record<string, unknown> | undefined)?.[segment.replace(/~1/g, '/').replace(/~0/g, '~')];
    expect({ ref, resolved: target !== undefined }).toEqual({ ref, resolved: true });
  }
  expect(JSON.stringify(served)).not.toContain('"$id"');

  // Redocly, with the project's rules and the example checks on, finds nothing in what a bank downloads.
  cpSync(join(ROOT, 'redocly.yaml'), join(work, 'redocly.yaml'));
  writeFileSync(join(work, 'openapi.json'), json.answer.text);
  const lint = await redoclyLint(work, 'openapi.json');
  expect(problemLines(lint.problems)).toEqual([]);
  expect(lint.exitCode).toBe(0);
});
