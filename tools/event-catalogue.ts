/**
 * Renders the event catalogue, docs/events.md, from contracts/: events.json
 * (type, topic, key, direction, data schema), the JSON Schemas (fields,
 * examples), cloudevent.schema.json (what each type pins) and asyncapi.yaml
 * (titles, summaries, key descriptions). test/docs.spec.ts keeps the file
 * equal to this output.
 *   node dist/tools/event-catalogue.js            prints it
 *   node dist/tools/event-catalogue.js --write    updates docs/events.md
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ACTIVATION_RESULTS_GROUP } from '../src/activation/activation-results-consumer';
import { projectRoot } from '../src/common/project-root';
import { REGISTRATIONS_GROUP } from '../src/registry/registrations-consumer';
import { defineTool, runTool } from './options';

/** A JSON Schema, as far as the catalogue reads it. */
interface Schema {
  $ref?: string;
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  title?: string;
  description?: string;
  properties?: Record<string, Schema>;
  propertyNames?: Schema;
  required?: string[];
  anyOf?: Schema[];
  allOf?: { if?: Schema; then?: Schema; else?: Schema }[];
  examples?: unknown[];
}

interface EventEntry {
  type: string;
  topic: string;
  key: string;
  direction: 'publish' | 'consume';
  dataSchema: string;
  source?: string;
}

interface AsyncMessage {
  name: string;
  title?: string;
  summary?: string;
  bindings?: { $ref?: string };
}

/**
 * Who writes and who reads each topic. The contracts say which side the
 * gateway is on (events.json `direction`); the parties on the other side are
 * named here. A topic missing from this table stops the generator.
 */
const PARTIES: Record<string, { producer: string; consumers: string }> = {
  'absher.activations.v1': {
    producer: 'the gateway (outbox relay)',
    consumers: 'the identity core',
  },
  'absher.gateway.ops.v1': {
    producer: 'the gateway (outbox relay)',
    consumers: 'ops dashboards; the gateway’s own `/ops` page (each gateway process reads the topic in a consumer group of its own)',
  },
  'absher.gateway.dlq.v1': {
    producer: 'the gateway (outbox relay)',
    consumers: 'operators (see the operations runbook)',
  },
  'absher.registrations.v1': {
    producer: 'the identity core',
    consumers: `the gateway, consumer group \`${REGISTRATIONS_GROUP}\`, into the registration read model`,
  },
  'absher.activation-results.v1': {
    producer: 'the identity core',
    consumers: `the gateway, consumer group \`${ACTIVATION_RESULTS_GROUP}\`, onto the stored activation requests`,
  },
};

/** A `$ref` to a shared definition: relative to the referring schema's file (contracts/README.md), or by `$id` URL. */
const DEFINITIONS_REF = /(?:^|\/)definitions\.schema\.json#\/\$defs\/([^/]+)$/;

export function renderEventCatalogue(root: string = projectRoot()): string {
  const contracts = join(root, 'contracts');
  const readJson = <T>(path: string): T => JSON.parse(readFileSync(join(contracts, path), 'utf8')) as T;
  const events = readJson<EventEntry[]>('events.json');
  const definitions = readJson<{ $defs: Record<string, Schema> }>('schemas/common/definitions.schema.json').$defs;
  const envelope = readJson<Schema>('schemas/common/cloudevent.schema.json');
  const asyncapi = parse(readFileSync(join(contracts, 'asyncapi.yaml'), 'utf8')) as {
    channels: Record<string, { address: string; title?: string; description?: string }>;
    components: { messages: Record<string, AsyncMessage>; messageBindings: Record<string, { kafka: { key: { description: string } } }> };
  };
  const messages = Object.values(asyncapi.components.messages);
  const messageOf = (type: string) => messages.find((m) => m.name === type);

  // What the envelope pins for each type: its `data` constants, `source` and `subject`.
  const pinsOf = (type: string): Schema => envelope.allOf?.find((branch) => branch.if?.properties?.type?.const === type)?.then ?? {};

  const keyOf = (entry: EventEntry, schema: Schema) => {
    const ref = messageOf(entry.type)?.bindings?.$ref;
    if (ref) return `\`${entry.key}\`: ${asyncapi.components.messageBindings[ref.split('/').pop()!].kafka.key.description}`;
    // No binding of its own in asyncapi.yaml: the key is the data field of that name.
    if (schema.properties?.[entry.key]) return `\`${entry.key}\`: the event's \`data.${entry.key}\``;
    throw new Error(`contracts/asyncapi.yaml describes no Kafka key for ${entry.type}, and its data has no field "${entry.key}"`);
  };

  const usedDefinitions = new Set<string>();
  const typeText = (schema: Schema, alternative = false): string => {
    const definition = schema.$ref ? DEFINITIONS_REF.exec(schema.$ref) : null;
    if (definition) {
      const name = definition[1];
      if (!definitions[name]) throw new Error(`${schema.$ref} is not in definitions.schema.json`);
      usedDefinitions.add(name);
      return `[${name}](#${name.toLowerCase()})`;
    }
    if (schema.anyOf) return schema.anyOf.map((option) => typeText(option, true)).join(' or ');
    if (schema.const !== undefined) return alternative ? `\`${String(schema.const)}\`` : `\`${String(schema.const)}\` (always)`;
    if (schema.enum) return `one of ${schema.enum.map((value) => `\`${String(value)}\``).join(', ')}`;
    const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
    const described = types.map((type) => {
      if (type === 'string') {
        const details: string[] = [];
        if (schema.format) details.push(schema.format);
        if (schema.minLength !== undefined && schema.minLength === schema.maxLength) details.push(`${schema.minLength} characters`);
        else if (schema.maxLength !== undefined) details.push(`at most ${schema.maxLength} characters`);
        if (schema.pattern) details.push(`\`${schema.pattern}\``);
        return details.length ? `string (${details.join(', ')})` : 'string';
      }
      if ((type === 'integer' || type === 'number') && schema.minimum !== undefined) return `${type} ≥ ${schema.minimum}`;
      if (type === 'object' && schema.propertyNames) return `object: a count per ${typeText(schema.propertyNames)}`;
      return type;
    });
    if (described.length === 0) throw new Error(`cannot describe the type of ${JSON.stringify(schema).slice(0, 120)}`);
    return described.join(' or ');
  };

  /** "yes", "no", or the condition under which an allOf if/then makes it required. */
  const requiredText = (schema: Schema, name: string): string => {
    if (schema.required?.includes(name)) return 'yes';
    for (const branch of schema.allOf ?? []) {
      if (!branch.then?.required?.includes(name)) continue;
      const [[field, condition]] = Object.entries(branch.if?.properties ?? {});
      return `when \`${field}\` is \`${String(condition.const)}\``;
    }
    return 'no';
  };

  const fieldRows = (schema: Schema, pinned: Record<string, Schema>, prefix = ''): string[] =>
    Object.entries(schema.properties ?? {}).flatMap(([name, property]) => {
      const pin = prefix ? undefined : pinned[name];
      const shown = pin?.const !== undefined ? pin : property;
      const description = pin?.const !== undefined ? pin.description : property.description;
      const row = `| \`${prefix}${name}\` | ${cell(typeText(shown))} | ${requiredText(schema, name)} | ${cell(description ?? '')} |`;
      const nested = property.properties && !property.propertyNames ? fieldRows(property, {}, `${prefix}${name}.`) : [];
      return [row, ...nested];
    });

  const out: string[] = [];
  out.push(
    '<!-- Generated from contracts/ by tools/event-catalogue.ts (npm run docs:events). Do not edit: test/docs.spec.ts fails when this file differs from the generator. -->',
    '',
    '# Event catalogue',
    '',
    'Every Kafka record the gateway publishes or consumes, from [`contracts/`](../contracts/README.md):',
    '`events.json` for the type, topic, key and direction, the JSON Schemas for the fields and examples,',
    'and `asyncapi.yaml` for titles and key descriptions. Delivery is at least once, so consumers',
    'de-duplicate on the CloudEvent `id`; order holds only among records with the same key.',
    'Records follow the CloudEvents Kafka protocol binding: the gateway publishes in structured mode (the value is',
    'the JSON event, with the header `content-type: application/cloudevents+json; charset=utf-8`), and its consumers',
    'also accept binary mode (the value is the `data`, the attributes are `ce_*` headers).',
    '',
    '## Topics',
    '',
    '| topic | Kafka key | event types | written by | read by |',
    '|---|---|---|---|---|',
  );
  const topics = [...new Set(events.map((e) => e.topic))];
  for (const topic of topics) {
    const parties = PARTIES[topic];
    if (!parties) throw new Error(`tools/event-catalogue.ts names no producer and consumers for topic ${topic}`);
    const onTopic = events.filter((e) => e.topic === topic);
    const keys = [...new Set(onTopic.map((e) => `\`${e.key}\``))].join(', ');
    const types = onTopic.map((e) => `[\`${e.type}\`](#${anchor(e.type)})`).join('<br>');
    out.push(`| \`${topic}\` | ${keys} | ${types} | ${cell(parties.producer)} | ${cell(parties.consumers)} |`);
  }
  out.push('');
  for (const topic of topics) {
    const channel = Object.values(asyncapi.channels).find((c) => c.address === topic);
    if (channel) out.push(`- \`${topic}\`${channel.title ? `, *${channel.title}*` : ''}: ${oneLine(channel.description ?? '')}`);
  }

  out.push('', '## Envelope', '', oneLine(envelope.description ?? ''), '', '| attribute | type | description |', '|---|---|---|');
  for (const [name, property] of Object.entries(envelope.properties ?? {})) {
    if (name === 'data') continue;
    out.push(`| \`${name}\` | ${cell(name === 'type' ? 'string: the event type' : typeText(property))} | ${cell(property.description ?? '')} |`);
  }
  out.push('| `data` | object | The event’s data: the fields listed under each type below. |');

  out.push('', '## Events');
  for (const entry of events) {
    const message = messageOf(entry.type);
    const schema = readJson<Schema>(entry.dataSchema);
    const pins = pinsOf(entry.type);
    const pinnedData = pins.properties?.data?.properties ?? {};
    const parties = PARTIES[entry.topic];
    out.push('', `### \`${entry.type}\``, '');
    const lead = [message?.title ? `**${message.title}.**` : '', oneLine(message?.summary ?? schema.description ?? '')].filter(Boolean).join(' ');
    if (lead) out.push(lead, '');
    out.push(
      '| | |',
      '|---|---|',
      `| topic | \`${entry.topic}\` |`,
      `| Kafka key | ${cell(keyOf(entry, schema))} |`,
      `| direction | ${entry.direction === 'publish' ? 'published by the gateway' : 'consumed by the gateway'} |`,
      `| producer | ${cell(parties.producer)} |`,
      `| consumers | ${cell(parties.consumers)} |`,
    );
    const source = pins.properties?.source?.const ?? entry.source;
    if (source) out.push(`| \`source\` | \`${String(source)}\` |`);
    const subject = pins.properties?.subject;
    if (subject?.description) out.push(`| \`subject\` | ${cell(subject.description)} |`);
    out.push(`| data schema | [\`${entry.dataSchema}\`](../contracts/${entry.dataSchema}) |`);
    out.push('', '| field | type | required | description |', '|---|---|---|---|', ...fieldRows(schema, pinnedData));
    // Only the schema's examples that this type admits (a schema shared by two types has examples of both).
    const examples = (schema.examples ?? []).filter((example) =>
      Object.entries(pinnedData).every(([name, pin]) => pin.const === undefined || (example as Record<string, unknown>)[name] === pin.const),
    );
    for (const example of examples) out.push('', examples.length > 1 ? `Example (${examples.indexOf(example) + 1} of ${examples.length}):` : 'Example:', '', '```json', JSON.stringify(example, null, 2), '```');
  }

  out.push('', '## Shared types', '', 'From [`schemas/common/definitions.schema.json`](../contracts/schemas/common/definitions.schema.json).');
  for (const name of Object.keys(definitions).filter((n) => usedDefinitions.has(n))) {
    const definition = definitions[name];
    out.push('', `### ${name}`, '', `${definition.title ? `${definition.title}: ` : ''}${typeText(definition)}.`, '', oneLine(definition.description ?? ''));
  }
  return out.join('\n') + '\n';
}

/** GitHub's heading anchor: lower case, punctuation other than '-' dropped, spaces to '-'. */
function anchor(heading: string): string {
  return heading.toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-');
}

/** Text for a Markdown table cell: one line, pipes escaped. */
function cell(text: string): string {
  return oneLine(text).replace(/\|/g, '\\|');
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

const TOOL = defineTool({
  name: 'event-catalogue',
  invocation: 'node dist/tools/event-catalogue.js',
  summary: 'Renders the event catalogue, docs/events.md, from contracts/ (`npm run docs:events` writes it).',
  options: { write: { type: 'boolean', help: 'update docs/events.md instead of printing the catalogue' } },
});

if (require.main === module) {
  runTool(TOOL, ({ write }) => {
    const catalogue = renderEventCatalogue();
    if (write) writeFileSync(join(projectRoot(), 'docs/events.md'), catalogue);
    else process.stdout.write(catalogue);
    return 0;
  });
}
