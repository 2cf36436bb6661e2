import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020, { ErrorObject, ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';

const CONTRACTS = join(__dirname, '../../contracts');
const ID_BASE = 'https://absher.gov.sa/gateway/contracts/';

function schemaFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? schemaFiles(path) : name.endsWith('.schema.json') ? [path] : [];
  });
}

/** Every JSON Schema of contracts/, loaded into one validator so cross-file $refs resolve. */
export const contracts = new Ajv2020({ strict: true, allErrors: true });
addFormats(contracts);
for (const file of schemaFiles(join(CONTRACTS, 'schemas'))) contracts.addSchema(JSON.parse(readFileSync(file, 'utf8')));

export const eventIndex: { type: string; topic: string; key: string; direction: string; dataSchema: string }[] = JSON.parse(
  readFileSync(join(CONTRACTS, 'events.json'), 'utf8'),
);

function check(schemaPath: string, value: unknown): ErrorObject[] {
  const validate = contracts.getSchema(ID_BASE + schemaPath);
  if (!validate) throw new Error(`no schema ${schemaPath} in contracts/`);
  return validate(value) ? [] : (validate.errors ?? []);
}

/** Fails the test with Ajv's explanation when `value` does not match the contract. */
export function expectContract(schemaPath: string, value: unknown): void {
  const errors = check(schemaPath, value);
  if (errors.length) throw new Error(`does not match contracts/${schemaPath}: ${contracts.errorsText(errors)}\n${JSON.stringify(value, null, 2)}`);
}

/** A Kafka record against contracts/: the CloudEvent envelope (which checks `data` by type) and its topic and key. */
export function expectEventContract(topic: string, key: string | null, event: { type: string; data: Record<string, unknown> }): void {
  expectContract('schemas/common/cloudevent.schema.json', event);
  const entry = eventIndex.find((e) => e.type === event.type);
  if (!entry) throw new Error(`event type ${event.type} is not in contracts/events.json`);
  if (entry.topic !== topic) throw new Error(`${event.type} belongs on ${entry.topic}, was on ${topic}`);
  if (entry.key === 'nationalId' && key !== event.data.nationalId) throw new Error(`${event.type} must be keyed by national ID`);
  if (entry.key === 'bankCode' && key !== event.data.bankCode) throw new Error(`${event.type} must be keyed by bank code`);
}

/** The documents under contracts/ whose schemas are JSON Schema: the bank port's API, the management port's, and the Kafka side. */
export type ContractDocument = 'openapi.yaml' | 'management-openapi.yaml' | 'asyncapi.yaml';
type OpenApiDocument = Exclude<ContractDocument, 'asyncapi.yaml'>;

/**
 * Strict like `contracts`, so a misspelt or unknown keyword in a document's
 * schemas fails the test instead of being ignored. The OpenAPI and AsyncAPI
 * Schema Objects add a few annotation keywords to JSON Schema; they are
 * declared here as known and validate nothing. Union types (`[integer,
 * 'null']`) are plain JSON Schema, so they are allowed.
 */
const documentValidator = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
addFormats(documentValidator);
for (const keyword of ['example', 'discriminator', 'xml', 'externalDocs']) documentValidator.addKeyword({ keyword });
for (const file of schemaFiles(join(CONTRACTS, 'schemas'))) documentValidator.addSchema(JSON.parse(readFileSync(file, 'utf8')));

const loadedDocuments = new Map<ContractDocument, Record<string, any>>();

/** A document of contracts/, parsed once; its `components.schemas` are added to the validator as `$defs` of a resource named after the document. */
export function contractDocument(document: ContractDocument): Record<string, any> {
  let parsed = loadedDocuments.get(document);
  if (!parsed) {
    parsed = parse(readFileSync(join(CONTRACTS, document), 'utf8')) as Record<string, any>;
    documentValidator.addSchema({ $id: ID_BASE + document, $defs: absoluteRefs(parsed.components?.schemas ?? {}, document) });
    loadedDocuments.set(document, parsed);
  }
  return parsed;
}

/**
 * A schema of a document with every `$ref` made absolute, so it compiles
 * wherever it sits: `#/components/schemas/X` to that document's `$defs/X`,
 * and a relative file reference to the `$id` of the schema file it names
 * (the `$id`s mirror the folder layout, so the two are the same URL).
 */
function absoluteRefs(node: unknown, document: ContractDocument): unknown {
  if (Array.isArray(node)) return node.map((item) => absoluteRefs(item, document));
  if (!node || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node).map(([key, value]) => {
      if (key !== '$ref' || typeof value !== 'string') return [key, absoluteRefs(value, document)];
      const local = /^#\/components\/schemas\/(.+)$/.exec(value);
      return [key, local ? `${ID_BASE}${document}#/$defs/${local[1]}` : new URL(value, ID_BASE + document).href];
    }),
  );
}

/** A schema found in `document` (inline, or one of its components), compiled strictly: an unknown keyword throws. */
export function compileDocumentSchema(document: ContractDocument, schema: object): ValidateFunction {
  contractDocument(document);
  return documentValidator.compile(absoluteRefs(schema, document) as object);
}

/** Validates `value` against a schema found in `document`; returns Ajv's explanation, or null. */
export function documentSchemaErrors(document: ContractDocument, schema: object, value: unknown): string | null {
  const validate = compileDocumentSchema(document, schema);
  return validate(value) ? null : documentValidator.errorsText(validate.errors);
}

/** A response body against a schema of an OpenAPI document's components. */
export function expectOpenApiSchema(name: string, value: unknown, document: OpenApiDocument = 'openapi.yaml'): void {
  const openapi = contractDocument(document);
  if (!openapi.components?.schemas?.[name]) throw new Error(`no schema ${name} in contracts/${document}`);
  const errors = documentSchemaErrors(document, { $ref: `#/components/schemas/${name}` }, value);
  if (errors) throw new Error(`does not match contracts/${document} ${name}: ${errors}\n${JSON.stringify(value, null, 2)}`);
}

/*
 * Redocly CLI as the contract tests run it (test/contract-lint.spec.ts, test/e2e/openapi-served.e2e-spec.ts).
 */

/**
 * Loaded into the Redocly process before it starts: any TCP connection or
 * DNS lookup is refused and reported on stderr, so a lint that would phone
 * home (telemetry, an update check, a `$ref` to a URL) shows in the test.
 */
const OFFLINE_GUARD = `
import net from 'node:net';
import dns from 'node:dns';
const refuse = (what) => { process.stderr.write('NETWORK ATTEMPT ' + what + '\\n'); return new Error('offline: ' + what); };
net.Socket.prototype.connect = function (options) {
  const target = options && typeof options === 'object' ? options.host + ':' + options.port : String(options);
  process.nextTick(() => this.destroy(refuse(target)));
  return this;
};
dns.lookup = (host, options, callback) => (typeof options === 'function' ? options : callback)(refuse('dns ' + host));
`;

export interface RedoclyProblem {
  ruleId: string;
  severity: 'error' | 'warn';
  message: string;
  location: { source: { ref: string }; pointer: string }[];
}

interface LintResult {
  exitCode: number;
  problems: RedoclyProblem[];
  stderr: string;
}

/** Redocly CLI (node_modules/.bin/redocly) with `args`, in `cwd`, offline, on the Node that runs the tests (the project's Node 24). */
export function redocly(cwd: string, args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' };
  const cli = realpathSync(join(CONTRACTS, '../node_modules/.bin/redocly'));
  const node = ['--import', `data:text/javascript,${encodeURIComponent(OFFLINE_GUARD)}`, cli];
  return new Promise((resolve) => {
    execFile(process.execPath, [...node, ...args], { cwd, env, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ exitCode: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** `redocly lint --format=json` on one document, with the redocly.yaml of `cwd`. */
export async function redoclyLint(cwd: string, file: string): Promise<LintResult> {
  const { exitCode, stdout, stderr } = await redocly(cwd, ['lint', file, '--format=json', `--config=${join(cwd, 'redocly.yaml')}`]);
  try {
    return { exitCode, problems: (JSON.parse(stdout) as { problems: RedoclyProblem[] }).problems, stderr };
  } catch {
    throw new Error(`redocly lint exited ${exitCode} without a JSON report:\n${stdout}\n${stderr}`);
  }
}

/** One line per problem, for expectations that print what went wrong. */
export const problemLines = (problems: RedoclyProblem[]) => problems.map((p) => `${p.severity} ${p.ruleId} ${p.location[0]?.source.ref}${p.location[0]?.pointer ?? ''}: ${p.message}`);
