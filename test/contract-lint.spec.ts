import { Diagnostic, DiagnosticSeverity, fromFile, Parser } from '@asyncapi/parser';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleOpenApiDocument } from '../src/channels/http/openapi-document';
import { problemLines, redoclyLint } from './support/contracts';

/**
 * contracts/ as the standard tools read them, with no help from the tests'
 * own loading (test/support/contracts.ts): Redocly CLI with the recommended
 * ruleset (less what redocly.yaml turns off, with its reasons) on both
 * OpenAPI documents, and @asyncapi/parser on asyncapi.yaml. A copy of
 * contracts/ broken on purpose shows that each check can fail.
 */
const ROOT = join(__dirname, '..');

/** asyncapi.yaml through the AsyncAPI parser; `fromFile` gives it the file's path, so its file resolver follows the relative `$ref`s. */
async function parseAsyncApi(file: string): Promise<{ parsed: boolean; diagnostics: Diagnostic[] }> {
  const { document, diagnostics } = await fromFile(new Parser(), file).parse();
  return { parsed: document !== undefined, diagnostics };
}

const serious = (diagnostics: Diagnostic[]) =>
  diagnostics
    .filter((d) => d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning)
    .map((d) => `${DiagnosticSeverity[d.severity]} ${d.code} ${d.path.join('/')}: ${d.message}`);

describe('contracts/ through the standard tools', () => {
  // One document per run: Redocly writes one JSON report per document.
  it.each([
    ['openapi.yaml', 'bank'],
    ['management-openapi.yaml', 'management'],
  ])('Redocly lints %s without a problem, offline', async (document, api) => {
    const result = await redoclyLint(ROOT, `contracts/${document}`);
    expect(problemLines(result.problems)).toEqual([]);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).not.toContain('NETWORK ATTEMPT');
    // With its API's rules from redocly.yaml.
    expect(result.stderr).toContain(`contracts/${document} using lint rules for api '${api}'`);
  });

  it('Redocly lints the bank document as the gateway serves it (bundled) without a problem, examples checked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'contract-lint-'));
    try {
      cpSync(join(ROOT, 'redocly.yaml'), join(dir, 'redocly.yaml'));
      writeFileSync(join(dir, 'served-openapi.json'), JSON.stringify(bundleOpenApiDocument()));
      // Outside the `apis` of redocly.yaml: the root rules apply, with the example checks the bank API turns off.
      const result = await redoclyLint(dir, 'served-openapi.json');
      expect(problemLines(result.problems)).toEqual([]);
      expect(result.exitCode).toBe(0);
      expect(result.stderr).not.toContain('NETWORK ATTEMPT');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the AsyncAPI parser reads asyncapi.yaml, every $ref resolved, with no error or warning', async () => {
    const { parsed, diagnostics } = await parseAsyncApi(join(ROOT, 'contracts/asyncapi.yaml'));
    expect(serious(diagnostics)).toEqual([]);
    expect(parsed).toBe(true);
  });

  describe('on a copy of contracts/ broken on purpose', () => {
    let dir: string;

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'contract-lint-broken-'));
      cpSync(join(ROOT, 'contracts'), join(dir, 'contracts'), { recursive: true });
      cpSync(join(ROOT, 'redocly.yaml'), join(dir, 'redocly.yaml'));
      const breakFile = (file: string, from: string, to: string) => {
        const text = readFileSync(join(dir, file), 'utf8');
        if (!text.includes(from)) throw new Error(`${file} no longer contains ${from}: update this test`);
        writeFileSync(join(dir, file), text.replace(from, to));
      };
      // A $ref to a file that is not there, in each document.
      breakFile('contracts/openapi.yaml', "$ref: './schemas/http/problem.schema.json'", "$ref: './schemas/http/no-such-problem.schema.json'");
      breakFile('contracts/asyncapi.yaml', "$ref: './schemas/events/summary.schema.json'", "$ref: './schemas/events/no-such-summary.schema.json'");
      // The flow-mapping comma: unquoted, YAML splits the description into a stray key.
      breakFile('contracts/openapi.yaml', "description: 'A registered bank, or UNKNOWN for requests naming none.'", 'description: A registered bank, or UNKNOWN for requests naming none.');
    });

    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('Redocly reports the missing file and the stray key as errors', async () => {
      const result = await redoclyLint(dir, 'contracts/openapi.yaml');
      const errors = result.problems.filter((p) => p.severity === 'error');
      expect(errors.map((p) => p.ruleId)).toEqual(expect.arrayContaining(['no-unresolved-refs', 'struct']));
      expect(errors.find((p) => p.ruleId === 'struct')?.message).toContain('or UNKNOWN for requests naming none.');
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).not.toContain('NETWORK ATTEMPT');
    });

    it('the AsyncAPI parser reports the missing file as an error and gives no document', async () => {
      const { parsed, diagnostics } = await parseAsyncApi(join(dir, 'contracts/asyncapi.yaml'));
      const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
      expect(errors.map((d) => d.message).join('\n')).toContain('no-such-summary.schema.json');
      expect(parsed).toBe(false);
    });
  });
});
