import { resolve } from 'node:path';
import { parseArgs, ParseArgsConfig } from 'node:util';

/**
 * The command line of every tool in tools/: each declares its options once
 * (name, type, whether required, help text); they are parsed with node:util
 * parseArgs in strict mode and --help is printed from the same declarations,
 * so the two cannot drift apart. Every tool refuses an unknown option, a
 * missing or bad value and a stray argument the same way: one line naming the
 * mistake, prefixed with the tool's name, then its usage line, exit code 2.
 */

/** A mistake on the command line, or in a file it names: printed with the tool's usage line. */
export class UsageError extends Error {}

interface BaseOption {
  help: string;
  /** The heading --help lists the option under; ungrouped options come first, under "options". */
  group?: string;
}

export interface FlagOption extends BaseOption {
  type: 'boolean';
}

export interface StringOption extends BaseOption {
  type: 'string';
  /** The placeholder of the value in the usage line and --help, e.g. FILE. */
  value: string;
  required?: boolean;
  default?: string;
}

export interface IntegerOption extends BaseOption {
  type: 'integer';
  value: string;
  required?: boolean;
  default?: number;
  min?: number;
  max?: number;
  /** What a good value is, for the message about a bad one; by default said from min and max. */
  expects?: string;
}

export type OptionSpec = FlagOption | StringOption | IntegerOption;
export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

type Scalar<S extends OptionSpec> = S extends IntegerOption ? number : string;
type ValueOf<S extends OptionSpec> = S extends FlagOption ? boolean : S extends { required: true } | { default: string | number } ? Scalar<S> : Scalar<S> | undefined;

/** What a tool's body receives: each option by its name, typed by its declaration. */
export type Values<O extends OptionSpecs> = { -readonly [K in keyof O]: ValueOf<O[K]> };

export interface ToolSpec<O extends OptionSpecs = OptionSpecs> {
  /** Begins every message the tool prints about itself: `simulate: unknown option --nope`. */
  name: string;
  /** How it is run, before its arguments. Default: `npm run <name> --`. */
  invocation?: string;
  /** The words of a subcommand (the CLI's `banks list`). */
  command?: string;
  /** The arguments as the usage line shows them. Default: built from the options. */
  synopsis?: string;
  /** What the tool does, under the usage line. */
  summary: string;
  options: O;
  /** Printed after the options: environment, output, exit codes. */
  more?: string;
  /** The exit code of a usage error. 2, unless the tool's 2 already means something else. */
  usageExitCode?: number;
}

/** Declares a tool; the `const` parameter keeps each option's literal types, from which its value's type follows. */
export function defineTool<const O extends OptionSpecs>(tool: ToolSpec<O>): ToolSpec<O> {
  return tool;
}

const HELP: FlagOption = { type: 'boolean', help: 'print this help and exit' };

export type Parsed<O extends OptionSpecs> = { help: true } | { help: false; values: Values<O> };

/** Reads `argv` against the tool's options. Throws a UsageError naming what is wrong. */
export function parseOptions<O extends OptionSpecs>(tool: ToolSpec<O>, argv: readonly string[]): Parsed<O> {
  const config = {
    ...Object.fromEntries(Object.entries(tool.options).map(([name, spec]) => [name, { type: spec.type === 'boolean' ? ('boolean' as const) : ('string' as const) }])),
    help: { type: 'boolean' as const, short: 'h' },
  };
  let raw: Record<string, string | boolean | undefined>;
  let given: string[];
  try {
    const parsed = parseArgs({ args: [...argv], options: config, strict: true, allowPositionals: false, tokens: true });
    raw = parsed.values;
    given = parsed.tokens.flatMap((token) => (token.kind === 'option' ? [token.name] : []));
  } catch (error) {
    const { problem, help } = scan(tool.options, config, argv);
    // --help anywhere wins over a mistake elsewhere: it is what the user asked for.
    if (help) return { help: true };
    throw new UsageError(problem ?? (error as Error).message);
  }
  if (raw.help) return { help: true };
  const twice = given.find((name, i) => given.indexOf(name) !== i);
  if (twice) throw new UsageError(`--${twice} is given twice`);
  const missing = Object.entries(tool.options)
    .filter(([name, spec]) => spec.type !== 'boolean' && spec.required && raw[name] === undefined)
    .map(([name]) => `--${name}`);
  if (missing.length === 1) throw new UsageError(`${missing[0]} is required`);
  if (missing.length > 1) throw new UsageError(`${missing.slice(0, -1).join(', ')} and ${missing[missing.length - 1]} are required`);

  const values: Record<string, string | number | boolean | undefined> = {};
  for (const [name, spec] of Object.entries(tool.options)) {
    const value = raw[name];
    if (spec.type === 'boolean') values[name] = value === true;
    else if (value === undefined) values[name] = spec.default;
    else if (String(value).trim() === '') throw new UsageError(`--${name} needs a value (${spec.value})`);
    else if (spec.type === 'integer') values[name] = integer(name, spec, String(value));
    else values[name] = String(value);
  }
  return { help: false, values: values as Values<O> };
}

function integer(name: string, spec: IntegerOption, text: string): number {
  const value = Number(text);
  const fits = /^-?[0-9]+$/.test(text.trim()) && Number.isSafeInteger(value) && (spec.min === undefined || value >= spec.min) && (spec.max === undefined || value <= spec.max);
  if (fits) return value;
  const range = spec.min !== undefined && spec.max !== undefined ? `from ${spec.min} to ${spec.max}` : spec.min !== undefined ? `of at least ${spec.min}` : spec.max !== undefined ? `of at most ${spec.max}` : '';
  throw new UsageError(`--${name} must be ${spec.expects ?? `a whole number ${range}`.trim()} (got ${JSON.stringify(text)})`);
}

/**
 * The first mistake in `argv`, in words of our own: parseArgs's strict
 * messages quote values (which may be a key put in the wrong place) and
 * explain more than the user needs. Read leniently, token by token.
 */
function scan(options: OptionSpecs, config: ParseArgsConfig['options'], argv: readonly string[]): { problem: string | null; help: boolean } {
  const { tokens } = parseArgs({ args: [...argv], options: config, strict: false, allowPositionals: true, tokens: true });
  let problem: string | null = null;
  let help = false;
  for (const token of tokens) {
    if (token.kind === 'option' && token.name === 'help' && token.value === undefined) help = true;
    if (problem) continue;
    if (token.kind === 'positional') problem = 'unexpected argument: every value follows its --option';
    else if (token.kind === 'option-terminator') problem = 'unexpected "--": every value follows its --option';
    else if (token.kind === 'option') {
      const spec = token.name === 'help' ? HELP : options[token.name];
      if (!spec) problem = `unknown option ${token.rawName}`;
      else if (spec.type === 'boolean' && token.value !== undefined) problem = `${token.rawName} takes no value`;
      // An option right after a valueless one is taken for its value by a lenient read, never by a strict one.
      else if (spec.type !== 'boolean' && (token.value === undefined || (!token.inlineValue && token.value.startsWith('-')))) problem = `${token.rawName} needs a value (${spec.value})`;
    }
  }
  return { problem, help };
}

/** A path given on the command line, from the directory `npm run` was typed in (npm runs the script from the project root). */
export function fromWorkingDirectory(path: string): string {
  return resolve(process.env.INIT_CWD ?? process.cwd(), path);
}

/** `usage: npm run simulate -- [--burst N] [--concurrency N]` */
export function usageLine(tool: ToolSpec): string {
  const synopsis =
    tool.synopsis ??
    Object.entries(tool.options)
      .map(([name, spec]) => {
        const text = spec.type === 'boolean' ? `--${name}` : `--${name} ${spec.value}`;
        return spec.type !== 'boolean' && spec.required ? text : `[${text}]`;
      })
      .join(' ');
  const invocation = tool.invocation ?? `npm run ${tool.name} --`;
  const args = [tool.command, synopsis].filter(Boolean).join(' ');
  return `usage: ${args ? `${invocation} ${args}` : invocation.replace(/ --$/, '')}`;
}

/** `label` then `text` wrapped to 100 columns, continuation lines indented to `indent`. */
export function hanging(label: string, text: string, indent: number): string {
  const lines: string[] = [];
  let line = label.length < indent ? label.padEnd(indent) : `${label}\n${' '.repeat(indent)}`;
  let empty = true;
  for (const word of text.split(' ')) {
    if (!empty && line.length - line.lastIndexOf('\n') - 1 + 1 + word.length > 100) {
      lines.push(line);
      line = ' '.repeat(indent);
      empty = true;
    }
    line += (empty ? '' : ' ') + word;
    empty = false;
  }
  lines.push(line);
  return lines.join('\n');
}

/** What --help prints: the usage line, the summary, the options (by group), then the rest. */
export function helpText(tool: ToolSpec): string {
  const entries: [string, OptionSpec][] = [...Object.entries(tool.options), ['help', HELP]];
  const label = (name: string, spec: OptionSpec) => `  ${name === 'help' ? '-h, ' : ''}--${name}${spec.type === 'boolean' ? '' : ` ${spec.value}`}`;
  const indent = Math.min(30, Math.max(...entries.map(([name, spec]) => label(name, spec).length)) + 2);
  const describe = (spec: OptionSpec) => {
    // As a sentence after a sentence, in brackets after a phrase.
    const sentence = spec.help.endsWith('.');
    const note = (text: string) => (sentence ? ` ${text[0].toUpperCase()}${text.slice(1)}.` : ` (${text})`);
    if (spec.type === 'boolean') return spec.help;
    return `${spec.help}${spec.required ? note('required') : ''}${spec.default !== undefined ? note(`default ${spec.default}`) : ''}`;
  };
  const groups = [...new Set(entries.map(([, spec]) => spec.group))].sort((a, b) => (a === undefined ? -1 : b === undefined ? 1 : 0));
  const sections = groups.map((group) =>
    [`${group ?? 'options'}:`, ...entries.filter(([, spec]) => spec.group === group).map(([name, spec]) => hanging(label(name, spec), describe(spec), indent))].join('\n'),
  );
  return [usageLine(tool), tool.summary, ...sections, tool.more].filter((part) => part !== undefined && part !== '').join('\n\n').trimEnd() + '\n';
}

/**
 * The tool's options from the command line. `--help` (or `-h`) prints the
 * help and exits 0; a mistake is printed with the usage line and exits 2.
 */
export function readOptions<O extends OptionSpecs>(tool: ToolSpec<O>, argv: readonly string[] = process.argv.slice(2)): Values<O> {
  quietNegativeTimeouts();
  let parsed: Parsed<O>;
  try {
    parsed = parseOptions(tool, argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.exit(reportUsageError(tool, error));
  }
  if (parsed.help) {
    process.stdout.write(helpText(tool));
    process.exit(0);
  }
  return parsed.values;
}

let quieted = false;

/**
 * kafkajs 2.2 schedules a negative timeout when its request queue is idle;
 * Node 24 warns about it (TimeoutNegativeWarning) and runs it after 1 ms, as
 * older Nodes did. Harmless, and not part of a tool's output: every other
 * warning is still printed as Node prints it.
 */
function quietNegativeTimeouts(): void {
  if (quieted) return;
  quieted = true;
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    if (warning.name !== 'TimeoutNegativeWarning') for (const print of printers) print(warning);
  });
}

/** Prints a usage error as every tool does; returns the exit code it calls for. */
export function reportUsageError(tool: ToolSpec, error: UsageError): number {
  process.stderr.write(`${tool.name}: ${error.message}\n${usageLine(tool)}\n(--help explains every option)\n`);
  return tool.usageExitCode ?? 2;
}

/**
 * Ends the process with the exit code `work` resolves to, once stdout is
 * flushed. A UsageError it rejects with (a file named on the command line
 * that cannot be used) exits as a mistake on the command line does; any other
 * error is printed as `<name>: <message>`, exit code 1.
 */
export function exitWith(tool: ToolSpec, work: Promise<number>): void {
  work
    .catch((error: unknown) => {
      if (error instanceof UsageError) return reportUsageError(tool, error);
      process.stderr.write(`${tool.name}: ${error instanceof Error ? error.message : String(error)}\n`);
      return 1;
    })
    // Explicit exit: pooled keep-alive sockets (fetch, kafkajs) would otherwise hold the process open.
    .then((code) => process.stdout.write('', () => process.exit(code)));
}

/** The whole of a tool: its options read (or help printed), then `body`, whose result is the exit code. */
export function runTool<O extends OptionSpecs>(tool: ToolSpec<O>, body: (values: Values<O>) => Promise<number> | number): void {
  const values = readOptions(tool);
  exitWith(tool, Promise.resolve().then(() => body(values)));
}
