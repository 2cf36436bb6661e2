import { readFileSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { projectRoot } from '../../common/project-root';

// Apart from the controller (openapi.controller.ts), which needs Nest: the tests bundle the document without starting a gateway.

type Node = unknown;
type JsonObject = Record<string, Node>;

/** The bank port's OpenAPI document in contracts/. */
export const OPENAPI_DOCUMENT = 'contracts/openapi.yaml';

/**
 * `contracts/openapi.yaml` as one self-contained document. The contract
 * keeps its JSON Schemas in files of their own (schemas/**), referred to by
 * relative `$ref`s; a client fetching the document from the gateway cannot
 * follow those, so each schema it uses becomes a component and every `$ref`
 * points inside the document. Component names are the ones Redocly's bundler
 * gives (the last segment of the JSON pointer, or the file's name without
 * `.json`), so the served document and `redocly bundle` agree.
 *
 * The bundled schemas lose their `$id` and `$schema`: in one document their
 * `$ref`s are JSON pointers into that document, and a `$id` would make them
 * resolve against the schema file's URL instead.
 */
export function bundleOpenApiDocument(rootFile: string = join(projectRoot(), OPENAPI_DOCUMENT)): JsonObject {
  const parsed = new Map<string, Node>();
  const read = (file: string): Node => {
    if (!parsed.has(file)) parsed.set(file, parse(readFileSync(file, 'utf8')));
    return parsed.get(file);
  };
  const document = structuredClone(read(rootFile)) as JsonObject;
  const components = ((document.components ??= {}) as JsonObject);
  const schemas = ((components.schemas ??= {}) as JsonObject);
  const bundledAs = new Map<string, string>();

  const componentFor = (file: string, pointer: string): string => {
    const key = `${file}#${pointer}`;
    const known = bundledAs.get(key);
    if (known) return known;
    const segments = pointer.split('/').filter(Boolean).map((segment) => decodeURIComponent(segment).replace(/~1/g, '/').replace(/~0/g, '~'));
    const name = segments.length ? segments[segments.length - 1] : basename(file, extname(file));
    // Two schemas under one name would silently change the contract; test/contract-lint.spec.ts bundles the document, so this shows there first.
    if (name in schemas) throw new Error(`${OPENAPI_DOCUMENT}: ${key} and another schema would both be components/schemas/${name}`);
    bundledAs.set(key, name);
    let target = read(file);
    for (const segment of segments) {
      target = target && typeof target === 'object' ? (target as JsonObject)[segment] : undefined;
      if (target === undefined) throw new Error(`${OPENAPI_DOCUMENT}: $ref ${key} points at nothing`);
    }
    const { $id: _id, $schema: _schema, ...schema } = target as JsonObject;
    schemas[name] = {}; // claimed before its own $refs are followed, so a schema that refers back to itself ends
    schemas[name] = rewrite(schema, file, true);
    return name;
  };

  /** `node` with every `$ref` to another file made local; `inSchema` says whether a `$ref` here names a Schema Object. */
  const rewrite = (node: Node, file: string, inSchema: boolean): Node => {
    if (Array.isArray(node)) return node.map((item) => rewrite(item, file, inSchema));
    if (!node || typeof node !== 'object') return node;
    const out: JsonObject = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string' && !(file === rootFile && value.startsWith('#'))) {
        // Only Schema Objects live in other files (contracts/README.md); anything else would need a component type of its own.
        if (!inSchema) throw new Error(`${OPENAPI_DOCUMENT}: $ref ${value} in ${file} is not a schema`);
        const [path, fragment = ''] = value.split('#');
        out[key] = `#/components/schemas/${componentFor(path ? resolve(dirname(file), path) : file, fragment)}`;
      } else {
        out[key] = rewrite(value, file, inSchema || key === 'schema');
      }
    }
    return out;
  };

  for (const [name, schema] of Object.entries(schemas)) schemas[name] = rewrite(schema, rootFile, true);
  for (const [key, value] of Object.entries(document)) {
    if (key !== 'components') document[key] = rewrite(value, rootFile, false);
  }
  for (const [type, group] of Object.entries(components)) {
    if (type !== 'schemas') components[type] = rewrite(group, rootFile, false);
  }
  return document;
}
