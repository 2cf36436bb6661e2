import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { defineTool, hanging, UsageError, Values } from '../options';
import { CUSTOMER_ROLES } from './customers';

export type JsonChannel = 'INTERNET_BANKING' | 'PHONE_BANKING';

export interface JsonOptions {
  /** Scheme, host, port and any proxy prefix; no trailing slash. */
  baseUrl: string;
  keyFile: string;
  certFile: string;
  gatewayCertFile: string | null;
  gatewayId: string;
  channel: JsonChannel;
}

export interface IsoOptions {
  host: string;
  port: number;
  acquirer: string;
  macKey: Buffer;
  terminal: string;
  pan: string;
}

export interface KitOptions {
  bank: string;
  json: JsonOptions | null;
  iso: IsoOptions | null;
  customersFile: string | null;
  reportFile: string | null;
  timeoutMs: number;
}

/** The kit's options: --help and the parser are built from this one declaration. */
export const KIT = defineTool({
  name: 'conformance',
  synopsis: '--bank CODE [--url URL --key FILE --cert FILE [--gateway-cert FILE] ...] [--iso-host HOST --acquirer ID --mac-key HEX ...] [--customers FILE] [--report FILE]',
  summary: `absher-bank-gateway conformance kit (partner interface, version 1)

Sends the standard cases a partner bank must pass to a running gateway and
prints a pass/fail report in Markdown that the bank sends in with its
onboarding request. Run it against the gateway's test environment: it
creates activations for the test customers and reverses one.

  npm run conformance -- --bank RJHI --url https://gw.test:8080 \\
      --key bank-key.pem --cert bank-cert.pem --gateway-cert gateway-signing-cert.pem \\
      --customers customers.json --report report.md
  npm run conformance -- --bank RJHI --iso-host gw.test --iso-port 8583 \\
      --acquirer 588847 --mac-key-file rjhi.mac --customers customers.json

Both channels may be tested in one run. Relative paths are taken from the
directory you run npm in.`,
  options: {
    bank: { type: 'string', value: 'CODE', required: true, help: 'Your bank code (4 letters, the bank part of your BIC): X-Bank-Id and the JWS "iss".' },
    customers: { type: 'string', value: 'FILE', help: 'Test customers the gateway operator registered for you (format below). Without it the outcome cases that need a registration are skipped and the result is at best INCOMPLETE.' },
    report: { type: 'string', value: 'FILE', help: 'Also write the Markdown report to FILE (it always goes to standard output).' },
    timeout: { type: 'integer', value: 'MS', min: 100, default: 15_000, expects: 'a whole number of milliseconds, at least 100', help: 'How long to wait for each answer.' },
    url: { type: 'string', value: 'URL', group: 'signed JSON (spec 3)', help: 'The gateway\'s signed JSON API, e.g. https://gateway.example:8080. A path prefix of a reverse proxy is kept for the connection; the signed "htu" is the gateway\'s own path (/v1/activations).' },
    key: { type: 'string', value: 'FILE', group: 'signed JSON (spec 3)', help: 'Your signing private key (PEM; EC P-256 signs ES256, RSA signs PS256). Read locally, never sent or printed.' },
    cert: { type: 'string', value: 'FILE', group: 'signed JSON (spec 3)', help: 'The certificate of that key as registered with the gateway (PEM). Its SHA-256 thumbprint is the "kid".' },
    'gateway-cert': { type: 'string', value: 'FILE', group: 'signed JSON (spec 3)', help: 'The gateway\'s response-signing certificate (PEM). Every answer\'s X-JWS-Signature is verified with it. Without it signatures are not checked and the result is at best INCOMPLETE.' },
    'gateway-id': { type: 'string', value: 'ID', group: 'signed JSON (spec 3)', help: 'The "iss" the gateway signs its answers with. Default absher-bank-gateway.' },
    channel: { type: 'string', value: 'CHANNEL', group: 'signed JSON (spec 3)', help: 'INTERNET_BANKING (default) or PHONE_BANKING: the channel your requests name.' },
    'iso-host': { type: 'string', value: 'HOST', group: 'ISO 8583 (spec 4)', help: 'The gateway\'s ISO 8583 listener for ATM switches.' },
    'iso-port': { type: 'integer', value: 'PORT', min: 1, max: 65535, expects: 'a port number, 1-65535', group: 'ISO 8583 (spec 4)', help: 'Its port. Default 8583.' },
    acquirer: { type: 'string', value: 'ID', group: 'ISO 8583 (spec 4)', help: 'Your acquiring institution id (field 32), as registered with the gateway.' },
    'mac-key': { type: 'string', value: 'HEX', group: 'ISO 8583 (spec 4)', help: 'Your double-length 3DES MAC key, 32 hex digits. Never printed: the report shows its key check value (KCV).' },
    'mac-key-file': { type: 'string', value: 'FILE', group: 'ISO 8583 (spec 4)', help: 'The same key read from a file, which keeps it out of shell history and the process list.' },
    terminal: { type: 'string', value: 'ID', group: 'ISO 8583 (spec 4)', help: 'Field 41, 8 characters. Default CONFTEST.' },
    pan: { type: 'string', value: 'DIGITS', group: 'ISO 8583 (spec 4)', help: 'Field 2, 12 to 19 digits. Default 4111111111111111, a test card number. Printed masked.' },
  },
  more: moreHelp(),
  // 2 is INCOMPLETE, a verdict banks act on: a mistake on the command line keeps EX_USAGE.
  usageExitCode: 64,
});

const BANK_CODE = /^[A-Z]{4}$/;
const MAC_KEY = /^[0-9A-Fa-f]{32}$/;

/**
 * Checks what the command line says beyond each option's own type: which
 * options go together, the formats of codes, keys and URLs, and that the
 * files exist. Relative paths are taken from the directory the user ran
 * `npm run` in (INIT_CWD): npm itself runs the script from the project root,
 * which is not where a bank keeps its key.
 */
export function kitOptions(values: Values<typeof KIT.options>, cwd = process.env.INIT_CWD ?? process.cwd()): KitOptions {
  const raw: Record<string, string | number | undefined> = values;
  const text = (name: string): string | undefined => {
    const value = raw[name];
    return typeof value === 'string' ? value : undefined;
  };
  const file = (name: string): string | null => {
    const value = text(name);
    if (value === undefined) return null;
    const path = isAbsolute(value) ? value : resolve(cwd, value);
    if (!existsSync(path)) throw new UsageError(`--${name}: no such file: ${path}`);
    return path;
  };

  const bank = values.bank;
  if (!BANK_CODE.test(bank)) throw new UsageError('--bank must be 4 capital letters (the bank part of your BIC), e.g. RJHI');

  const jsonGiven = ['url', 'key', 'cert', 'gateway-cert', 'gateway-id', 'channel'].filter((name) => raw[name] !== undefined);
  let json: JsonOptions | null = null;
  if (jsonGiven.length) {
    const missing = ['url', 'key', 'cert'].filter((name) => raw[name] === undefined);
    if (missing.length) throw new UsageError(`signed JSON needs ${missing.map((m) => `--${m}`).join(', ')} as well (given: ${jsonGiven.map((g) => `--${g}`).join(', ')})`);
    let url: URL;
    try {
      url = new URL(text('url')!);
    } catch {
      throw new UsageError('--url is not a URL; e.g. https://gateway.example:8080');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--url must be http:// or https://');
    if (url.search || url.hash) throw new UsageError('--url must not have a query or fragment');
    const channel = text('channel') ?? 'INTERNET_BANKING';
    if (channel !== 'INTERNET_BANKING' && channel !== 'PHONE_BANKING') {
      throw new UsageError('--channel must be INTERNET_BANKING or PHONE_BANKING (ATMs use ISO 8583: --iso-host)');
    }
    json = {
      baseUrl: `${url.origin}${url.pathname.replace(/\/+$/, '')}`,
      keyFile: file('key')!,
      certFile: file('cert')!,
      gatewayCertFile: file('gateway-cert'),
      gatewayId: text('gateway-id') ?? 'absher-bank-gateway',
      channel,
    };
  }

  const isoGiven = ['iso-host', 'iso-port', 'acquirer', 'mac-key', 'mac-key-file', 'terminal', 'pan'].filter((name) => raw[name] !== undefined);
  let iso: IsoOptions | null = null;
  if (isoGiven.length) {
    const missing = ['iso-host', 'acquirer'].filter((name) => raw[name] === undefined);
    if (raw['mac-key'] === undefined && raw['mac-key-file'] === undefined) missing.push('mac-key');
    if (missing.length) throw new UsageError(`ISO 8583 needs ${missing.map((m) => `--${m}`).join(', ')} as well (given: ${isoGiven.map((g) => `--${g}`).join(', ')})`);
    if (raw['mac-key'] !== undefined && raw['mac-key-file'] !== undefined) throw new UsageError('give --mac-key or --mac-key-file, not both');
    const macKeyFile = file('mac-key-file');
    const macKey = (macKeyFile ? readFileSync(macKeyFile, 'utf8') : text('mac-key')!).trim();
    // The message never repeats the value: a near-miss of a real key is still secret.
    if (!MAC_KEY.test(macKey)) throw new UsageError(`${macKeyFile ? '--mac-key-file must hold' : '--mac-key must be'} 32 hex digits (a double-length 3DES key)`);
    const port = values['iso-port'] ?? 8583;
    const acquirer = text('acquirer')!;
    if (!/^[0-9]{1,11}$/.test(acquirer)) throw new UsageError('--acquirer must be 1 to 11 digits (field 32)');
    const terminal = text('terminal') ?? 'CONFTEST';
    if (!/^[\x20-\x7e]{8}$/.test(terminal)) throw new UsageError('--terminal must be 8 printable characters (field 41)');
    const pan = text('pan') ?? '4111111111111111';
    if (!/^[0-9]{12,19}$/.test(pan)) throw new UsageError('--pan must be 12 to 19 digits (field 2)');
    iso = { host: text('iso-host')!, port, acquirer, macKey: Buffer.from(macKey, 'hex'), terminal, pan };
  }

  if (!json && !iso) throw new UsageError('nothing to test: give --url/--key/--cert (signed JSON), --iso-host/--acquirer/--mac-key (ISO 8583), or both');
  const timeoutMs = values.timeout;
  return { bank, json, iso, customersFile: file('customers'), reportFile: text('report') === undefined ? null : resolve(cwd, text('report')!), timeoutMs };
}

/** The customers file and the exit codes, after the options in --help. */
function moreHelp(): string {
  const roles = Object.entries(CUSTOMER_ROLES)
    .map(([role, r]) => hanging(`  ${role}`, `${r.registration}; ${r.sent}. Expected: ${r.outcome}.${r.optional ? ' Optional.' : ''}`, 18))
    .join('\n');
  return `Test customers (--customers): the kit cannot register customers (only the
identity core can), so the gateway operator registers some for your bank's
tests and gives you a JSON file naming them. Mobiles in any accepted spelling.
  {
    "accepted":       { "nationalId": "1000000008", "mobile": "+966512345678" },
    "mobileMismatch": { "nationalId": "...", "mobile": "..." },
    ...
  }
${roles}
The accepted customer is accepted on each run: the gateway keeps its
registration PENDING_ACTIVATION until the identity core reports back.
On a development gateway, \`npm run conformance:dev-customers\` plays the
identity core and writes such a file.

Result and exit code:
  PASS        0  every case was run and passed
  FAIL        1  at least one case failed; the report says which and why
  INCOMPLETE  2  nothing failed, but cases were skipped or response signatures
                 were not checked (no --customers, no --gateway-cert)
  usage      64  a mistake on the command line

The report never contains private keys, MAC keys, PANs, or full national IDs
or mobiles (they are masked: 1*******08, +9665*****78).`;
}
