import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { DECISION_REASONS, REGISTRATION_STATUSES } from '../src/activation/activation.types';
import { ERROR_CODES } from '../src/common/gateway-error';
import { EVENT_TYPES, TOPICS } from '../src/kafka/topics';
import { EVENT_SOURCE, STRUCTURED_CONTENT_TYPE } from '../src/outbox/cloud-event';
import { httpStatusOf, problemOf } from '../src/channels/http/problem';
import { compileDocumentSchema, ContractDocument, contractDocument, contracts, documentSchemaErrors, eventIndex, expectContract } from './support/contracts';

const CONTRACTS = join(__dirname, '../contracts');
const schemaFiles = (dir: string): string[] =>
  readdirSync(join(CONTRACTS, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? schemaFiles(`${dir}/${entry.name}`) : entry.name.endsWith('.schema.json') ? [`${dir}/${entry.name}`] : [],
  );
const definitions = JSON.parse(readFileSync(join(CONTRACTS, 'schemas/common/definitions.schema.json'), 'utf8')).$defs;

/** The code and contracts/ say the same thing. */
describe('contracts/', () => {
  it('names the same error codes, decision reasons and registration statuses as the code', () => {
    expect([...definitions.errorCode.enum].sort()).toEqual([...ERROR_CODES].sort());
    expect([...definitions.decisionReason.enum].sort()).toEqual([...DECISION_REASONS].sort());
    expect([...definitions.registrationStatus.enum].sort()).toEqual([...REGISTRATION_STATUSES].sort());
  });

  it('lists every event type the code knows, on the topic the code uses', () => {
    expect(eventIndex.map((e) => e.type).sort()).toEqual(Object.values(EVENT_TYPES).sort());
    expect([...new Set(eventIndex.map((e) => e.topic))].sort()).toEqual(Object.values(TOPICS).sort());
    for (const entry of eventIndex.filter((e) => e.direction === 'publish')) expect((entry as { source?: string }).source).toBe(EVENT_SOURCE);
  });

  it('every problem the gateway can produce matches problem.schema.json, with the status of spec 3.5', () => {
    for (const code of ERROR_CODES) {
      const problem = problemOf(code, 'a specific explanation', 'req-1', '/v1/activations');
      expectContract('schemas/http/problem.schema.json', problem);
      expect(problem.status).toBe(httpStatusOf(code));
    }
  });

  it('every example in every schema validates against it', () => {
    let checked = 0;
    for (const id of Object.keys((contracts as unknown as { schemas: Record<string, unknown> }).schemas)) {
      const schema = contracts.getSchema(id)!.schema as { examples?: unknown[] };
      for (const example of schema.examples ?? []) {
        expect(contracts.validate(id, example)).toBe(true);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(5);
  });

  // Relative to the file that holds them, as Redocly, the AsyncAPI parser and Ajv (through the `$id`s) all read them.
  it.each(['openapi.yaml', 'management-openapi.yaml', 'asyncapi.yaml', ...schemaFiles('schemas')])('%s parses and every $ref points to an existing file and fragment', (file) => {
    const document = parse(readFileSync(join(CONTRACTS, file), 'utf8'));
    const refs: string[] = [];
    const walk = (node: unknown) => {
      if (Array.isArray(node)) node.forEach(walk);
      else if (node && typeof node === 'object') {
        for (const [key, value] of Object.entries(node)) {
          if (key === '$ref' && typeof value === 'string') refs.push(value);
          else walk(value);
        }
      }
    };
    walk(document);
    if (!file.startsWith('schemas/')) expect(refs.length).toBeGreaterThan(5);
    for (const ref of refs) {
      // An absolute URL would send standard tools to the network (the `$id`s name a host that serves nothing).
      expect({ ref, relative: !/^[a-z][a-z0-9+.-]*:/i.test(ref) }).toEqual({ ref, relative: true });
      const [path, fragment] = ref.split('#');
      const target = path ? join(dirname(join(CONTRACTS, file)), path) : join(CONTRACTS, file);
      expect({ ref, exists: existsSync(target) }).toEqual({ ref, exists: true });
      if (fragment) {
        let node: unknown = path.endsWith('.json') ? JSON.parse(readFileSync(target, 'utf8')) : parse(readFileSync(target, 'utf8'));
        for (const part of fragment.split('/').filter(Boolean)) node = (node as Record<string, unknown>)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
        expect({ ref, resolved: node !== undefined }).toEqual({ ref, resolved: true });
      }
    }
  });

  it.each<ContractDocument>(['openapi.yaml', 'management-openapi.yaml', 'asyncapi.yaml'])('every schema in %s compiles under Ajv strict mode', (document) => {
    const parsed = contractDocument(document);
    const schemas: [string, object][] = Object.entries<object>(parsed.components.schemas ?? {}).map(([name, schema]) => [`#/components/schemas/${name}`, schema]);
    if (document === 'asyncapi.yaml') {
      for (const [name, message] of Object.entries<{ headers?: object; payload: object }>(parsed.components.messages)) {
        schemas.push([`#/components/messages/${name}/payload`, message.payload]);
        if (message.headers) schemas.push([`#/components/messages/${name}/headers`, message.headers]);
      }
    } else {
      // Every `schema` of a media type, parameter or header (a Schema Object's own properties are compiled with it).
      const collect = (node: unknown, where: string): void => {
        if (!node || typeof node !== 'object' || where.startsWith('#/components/schemas')) return;
        for (const [key, value] of Object.entries(node)) {
          if (key === 'schema' && value && typeof value === 'object') schemas.push([`${where}/schema`, value]);
          else collect(value, `${where}/${key}`);
        }
      };
      collect(parsed, '#');
    }
    expect(schemas.length).toBeGreaterThan(5);
    for (const [where, schema] of schemas) {
      let error: string | null = null;
      try {
        compileDocumentSchema(document, schema);
      } catch (thrown) {
        error = (thrown as Error).message;
      }
      expect({ where, error }).toEqual({ where, error: null });
    }
  });

  it.each<ContractDocument>(['openapi.yaml', 'management-openapi.yaml'])('every example in %s matches its schema', (document) => {
    // Redocly checks these only in the served, bundled document (see redocly.yaml); Ajv checks them here, strictly.
    const examples: { where: string; schema: object; value: unknown }[] = [];
    const collect = (node: unknown, where: string, inSchema: boolean): void => {
      if (Array.isArray(node)) return node.forEach((item, index) => collect(item, `${where}/${index}`, inSchema));
      if (!node || typeof node !== 'object') return;
      const object = node as Record<string, any>;
      // A media type, parameter or header: `example`, or `examples` of Example Objects.
      if (!inSchema && object.schema && typeof object.schema === 'object') {
        if ('example' in object) examples.push({ where: `${where}/example`, schema: object.schema, value: object.example });
        for (const [name, example] of Object.entries<Record<string, unknown>>(object.examples ?? {})) examples.push({ where: `${where}/examples/${name}`, schema: object.schema, value: example.value });
      }
      // A Schema Object's own `examples` (an array; a property named `examples` is an object and is walked instead).
      if (inSchema && Array.isArray(object.examples)) object.examples.forEach((value, index) => examples.push({ where: `${where}/examples/${index}`, schema: object, value }));
      for (const [key, value] of Object.entries(object)) {
        const schemaBelow = inSchema || key === 'schema' || where === '#/components/schemas';
        if (!(inSchema && key === 'examples' && Array.isArray(value))) collect(value, `${where}/${key}`, schemaBelow);
      }
    };
    collect(contractDocument(document), '#', false);
    expect(examples.length).toBeGreaterThanOrEqual(document === 'openapi.yaml' ? 15 : 3);
    for (const { where, schema, value } of examples) expect({ where, errors: documentSchemaErrors(document, schema, value) }).toEqual({ where, errors: null });
  });

  it('every message example in asyncapi.yaml matches the message: headers and payload', () => {
    const messages = contractDocument('asyncapi.yaml').components.messages as Record<string, { headers?: object; payload: object; examples?: { name: string; headers?: unknown; payload?: unknown }[] }>;
    let checked = 0;
    for (const [name, message] of Object.entries(messages)) {
      for (const example of message.examples ?? []) {
        const where = `${name}/${example.name}`;
        if (example.headers !== undefined) expect({ where, headers: documentSchemaErrors('asyncapi.yaml', message.headers ?? {}, example.headers) }).toEqual({ where, headers: null });
        expect({ where, payload: documentSchemaErrors('asyncapi.yaml', message.payload, example.payload) }).toEqual({ where, payload: null });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(5);
  });

  it('asyncapi.yaml says every published event is structured mode, with the content-type header the gateway sends', () => {
    const asyncapi = contractDocument('asyncapi.yaml');
    const published = Object.values(asyncapi.operations as Record<string, { action: string; messages: { $ref: string }[] }>)
      .filter((operation) => operation.action === 'send')
      .flatMap((operation) => operation.messages.map((message) => message.$ref.split('/').pop()!));
    expect(published.length).toBeGreaterThan(5);
    for (const name of published) expect({ name, headers: asyncapi.components.messages[name].headers }).toEqual({ name, headers: { $ref: '#/components/schemas/publishedHeaders' } });
    expect(asyncapi.components.schemas.publishedHeaders.properties['content-type'].const).toBe(STRUCTURED_CONTENT_TYPE);
  });

  it('the OpenAPI document covers the endpoints of spec 3.1', () => {
    const openapi = parse(readFileSync(join(CONTRACTS, 'openapi.yaml'), 'utf8'));
    expect(openapi.openapi).toMatch(/^3\.1\./);
    expect(Object.keys(openapi.paths).sort()).toEqual(['/health/live', '/health/ready', '/openapi.json', '/openapi.yaml', '/ops', '/ops/login', '/ops/logout', '/ops/snapshot', '/ops/stream', '/v1/activations', '/v1/activations/{requestId}']);
    // The management port's document: what is kept off the bank port.
    const management = parse(readFileSync(join(CONTRACTS, 'management-openapi.yaml'), 'utf8'));
    expect(Object.keys(management.paths).sort()).toEqual(['/health/live', '/health/ready', '/metrics']);
  });
});

describe('contracts/iso8583', () => {
  it('the README field table is the one rendered from contracts/iso8583/fields.json', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { renderFieldTable } = require('../tools/iso-field-table');
    const readme = readFileSync(join(__dirname, '../README.md'), 'utf8');
    const table = /<!-- iso8583-fields:start -->\n([\s\S]*?)\n<!-- iso8583-fields:end -->/.exec(readme)?.[1];
    expect(table).toBe(renderFieldTable());
  });
});
