import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { DECISION_REASONS, REGISTRATION_STATUSES } from '../src/activation/activation.types';
import { ERROR_CODES } from '../src/common/gateway-error';
import { EVENT_TYPES, TOPICS } from '../src/kafka/topics';
import { EVENT_SOURCE } from '../src/outbox/cloud-event';
import { httpStatusOf, problemOf } from '../src/channels/http/problem';
import { contracts, eventIndex, expectContract } from './support/contracts';

const CONTRACTS = join(__dirname, '../contracts');
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

  it.each(['openapi.yaml', 'management-openapi.yaml', 'asyncapi.yaml'])('%s parses and every relative $ref points to an existing file and fragment', (file) => {
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
    expect(refs.length).toBeGreaterThan(5);
    for (const ref of refs) {
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

  it('the OpenAPI document covers the endpoints of spec 3.1', () => {
    const openapi = parse(readFileSync(join(CONTRACTS, 'openapi.yaml'), 'utf8'));
    expect(openapi.openapi).toMatch(/^3\.1\./);
    expect(Object.keys(openapi.paths).sort()).toEqual(['/health/live', '/health/ready', '/ops', '/ops/login', '/ops/logout', '/ops/snapshot', '/ops/stream', '/v1/activations', '/v1/activations/{requestId}']);
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
