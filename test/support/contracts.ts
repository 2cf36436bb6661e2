import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020, { ErrorObject } from 'ajv/dist/2020';
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

/** The bank port's API, and the management port's. */
type OpenApiDocument = 'openapi.yaml' | 'management-openapi.yaml';
const openapiDocuments = new Map<OpenApiDocument, { components: { schemas: Record<string, object> } }>();
const openapiValidator = new Ajv2020({ strict: false, allErrors: true });
addFormats(openapiValidator);

/** A response body against a schema of an OpenAPI document's components (its local $refs resolve). */
export function expectOpenApiSchema(name: string, value: unknown, document: OpenApiDocument = 'openapi.yaml'): void {
  let openapi = openapiDocuments.get(document);
  if (!openapi) openapiDocuments.set(document, (openapi = parse(readFileSync(join(CONTRACTS, document), 'utf8'))));
  if (!openapi!.components.schemas[name]) throw new Error(`no schema ${name} in contracts/${document}`);
  if (!openapiValidator.validate({ ...openapi!.components.schemas[name], components: openapi!.components }, value)) {
    throw new Error(`does not match contracts/${document} ${name}: ${openapiValidator.errorsText()}\n${JSON.stringify(value, null, 2)}`);
  }
}
