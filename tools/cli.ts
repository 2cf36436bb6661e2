import { existsSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { BankRegistryAdmin, RegistryChangeError } from '../src/banks/bank-registry-admin';
import { bankRegistryAdmin } from '../src/banks/banks.module';
import { ConfigurationError, GatewayConfig, loadConfig } from '../src/config/gateway-config';
import { createDataSource } from '../src/database/data-source';
import { EMBEDDED_DATABASE_URL_FILE } from '../src/database/store';
import { JsonLogger } from '../src/logging/json-logger';
import { KeyStore } from '../src/keys/key-store';
import { DataSource } from 'typeorm';
import { listInstances } from '../src/instances/instance-registry';
import { InstanceRepository } from '../src/instances/instance.repository';
import { OutboxAdmin } from '../src/outbox/outbox-admin';
import { OutboxRepository } from '../src/outbox/outbox.repository';
import { issueDevelopmentCertificate, SIGNING_ALGORITHMS, SigningAlgorithm } from './dev-certificate';
import { defineTool, exitWith, fromWorkingDirectory, hanging, OptionSpecs, readOptions, reportUsageError, ToolSpec, UsageError, Values } from './options';

/**
 * `npm run cli -- <group> <command> [options]`: the operators' tool for the
 * bank registry, the gateway instances and the outbox. It reads the gateway's own configuration (DATABASE_URL,
 * KEY_ENCRYPTION_KEY, TRUST_ANCHORS, ...), or, on the development defaults,
 * connects to the embedded database of the gateway running in DATA_DIR.
 * Changes take effect in running gateways within a second or two; each is
 * written to the audit trail with the operator's name. `dev-cert issue`
 * alone works on local files, for development banks.
 */
interface Context {
  admin: BankRegistryAdmin;
  dataSource: DataSource;
}

/** A command on the gateway's store (`store`), or one on local files only, which needs no running gateway. */
type Command =
  | { tool: ToolSpec; store: true; run(context: Context, values: Record<string, unknown>): Promise<void> }
  | { tool: ToolSpec; store: false; run(values: Record<string, unknown>): Promise<void> };

const out = (line = '') => process.stdout.write(`${line}\n`);

/** Accepted by every command on the store, so one invocation style works for all (changes are audited under it). */
const GLOBAL = {
  operator: { type: 'string', value: 'NAME', help: 'who makes the change, for the audit trail (default: ABSHER_OPERATOR, then the login name)' },
} as const satisfies OptionSpecs;

/** A command: its words, and its options declared once for parsing and for its --help. */
function command<const O extends OptionSpecs>(words: string, summary: string, options: O, run: (context: Context, values: Values<O>) => Promise<void>, synopsis?: string): Command {
  const tool = defineTool({ name: 'cli', command: words, summary, options: { ...options, ...GLOBAL }, synopsis: synopsis && `${synopsis} [--operator NAME]` });
  return { tool, store: true, run: run as (context: Context, values: Record<string, unknown>) => Promise<void> };
}

/** A command that changes nothing in the store: no --operator, no audit. */
function localCommand<const O extends OptionSpecs>(words: string, summary: string, options: O, run: (values: Values<O>) => Promise<void>): Command {
  const tool = defineTool({ name: 'cli', command: words, summary, options });
  return { tool, store: false, run: run as (values: Record<string, unknown>) => Promise<void> };
}

const BANK = { type: 'string', value: 'CODE', help: 'the bank code', required: true } as const;
const CHANNEL = { type: 'string', value: 'CHANNEL', help: 'ATM, INTERNET_BANKING or PHONE_BANKING', required: true } as const;
const NEXT_KEY = { type: 'boolean', help: "the next key of a rotation: requests MAC'd under either key verify, answers stay under the current one until mac-key promote" } as const;
const RATE = { type: 'integer', value: 'N', min: 1, expects: 'a whole number of requests per second, at least 1', required: true } as const;

const COMMANDS: Command[] = [
  command('instances list', 'the gateway instances sharing this database: alive or gone, their relay slots and consumer partitions', {}, async ({ dataSource }) => {
    const instances = await listInstances(new InstanceRepository(dataSource));
    table(
      ['instance', 'host', 'pid', 'state', 'heartbeat', 'relay slots', 'partitions'],
      instances.map((i) => [
        i.instanceId,
        i.host,
        String(i.pid),
        i.live ? 'alive' : 'gone',
        i.heartbeatAt,
        i.relaySlots.join(',') || '-',
        Object.entries(i.partitions).map(([topic, partitions]) => `${topic}:${partitions.join(',') || '-'}`).join(' ') || '-',
      ]),
    );
  }),
  command(
    'outbox parked',
    'events Kafka kept refusing (unknown topic, record too large...), parked with the reason; later events of the same key wait behind them',
    { limit: { type: 'integer', value: 'N', min: 1, default: 100, help: 'how many, oldest first' } },
    async ({ dataSource }, o) => {
      const parked = await new OutboxAdmin(new OutboxRepository(dataSource)).parked(o.limit);
      table(
        ['id', 'topic', 'key', 'type', 'attempts', 'waiting behind', 'parked at', 'reason'],
        parked.map((p) => [p.id, p.topic, p.key, p.type ?? '-', String(p.attempts), String(p.waitingBehind), p.parkedAt, p.reason ?? '-']),
      );
    },
  ),
  command(
    'outbox requeue',
    'publish parked events again (after fixing the cause: creating the topic, raising a size limit); the events waiting behind them follow in order',
    {
      id: { type: 'string', value: 'ID[,ID...]', help: 'parked event ids from outbox parked (comma-separated)' },
      all: { type: 'boolean', help: 'every parked event' },
    },
    async ({ dataSource }, o) => {
      if (!o.all && !o.id) throw new RegistryChangeError('--id or --all is required');
      const ids = o.all ? 'all' : list(o.id!);
      if (ids !== 'all' && ids.some((id) => !/^[0-9]+$/.test(id))) throw new RegistryChangeError('--id takes event ids (whole numbers) from outbox parked');
      const count = await new OutboxAdmin(new OutboxRepository(dataSource)).requeue(ids);
      out(`${count} parked event${count === 1 ? '' : 's'} re-queued; the relay publishes ${count === 1 ? 'it' : 'them'} within a second or two`);
    },
    '(--id ID[,ID...] | --all)',
  ),
  command('banks list', 'list the partner banks: channels, acquirer ids, rate limit, certificates in use, whether a MAC key is set, who manages them', {}, async ({ admin }) => {
    const banks = await admin.listBanks();
    table(
      ['code', 'name', 'channels', 'acquirers', 'rate/s', 'certificates', 'MAC key', 'managed by'],
      banks.map((b) => [b.code, b.name, b.channels.join(','), b.acquirerIds.join(',') || '-', String(b.rateLimitPerSecond), String(b.activeCertificates), b.macKey, b.managedBy]),
    );
  }),
  command(
    'banks register',
    'register a partner bank (then add its certificates and, for ATM, its MAC key)',
    {
      code: { type: 'string', value: 'CODE', help: "the 4 letters of the bank's BIC", required: true },
      name: { type: 'string', value: 'NAME', help: 'the bank name', required: true },
      channels: { type: 'string', value: 'LIST', help: 'comma-separated: ATM, INTERNET_BANKING, PHONE_BANKING', required: true },
      acquirer: { type: 'string', value: 'ID[,ID...]', help: 'ISO 8583 field 32 values that identify the bank (comma-separated)' },
      rate: { ...RATE, help: 'requests per second the bank may send (HTTP and ISO 8583 together)' },
    },
    async ({ admin }, o) => {
      await admin.registerBank({
        code: o.code.trim(),
        name: o.name.trim(),
        channels: list(o.channels),
        acquirerIds: o.acquirer ? list(o.acquirer) : [],
        rateLimitPerSecond: o.rate,
      });
      out(`registered ${o.code}; next: certs add --bank ${o.code} --file <certificate.pem>`);
    },
  ),
  command(
    'banks set-rate',
    "change a bank's rate limit (requests per second, HTTP and ISO 8583 together)",
    { bank: BANK, rate: { ...RATE, help: 'requests per second, at least 1' } },
    async ({ admin }, o) => {
      await admin.setRateLimit(o.bank.trim(), o.rate);
      out(`rate limit of ${o.bank}: ${o.rate} requests per second`);
    },
  ),
  command(
    'banks set-tls-clients',
    "the TLS client certificates that may speak for a bank under mutual TLS (HTTP_TLS_CLIENT_CA, ISO8583_TLS_CLIENT_CA): thumbprints, or CN= and a common name; an empty list refuses them all",
    { bank: BANK, clients: { type: 'string', value: 'LIST', help: 'comma-separated: a certificate thumbprint (43 characters, as certs add prints it) or CN=<common name>', required: true } },
    async ({ admin }, o) => {
      const clients = await admin.setTlsClients(o.bank.trim(), o.clients.split(',').map((c) => c.trim()).filter(Boolean));
      out(`TLS clients of ${o.bank}: ${clients.join(', ') || '(none)'}`);
    },
  ),
  command(
    'certs add',
    'register a signing certificate for a bank (checked against TRUST_ANCHORS); prints its thumbprint, the kid banks sign with',
    { bank: BANK, file: { type: 'string', value: 'FILE', help: 'PEM: the certificate, then any intermediates', required: true } },
    async ({ admin }, o) => {
      const added = await admin.addCertificate(o.bank.trim(), readFile(o.file));
      out(`added to ${o.bank}: thumbprint (kid) ${added.thumbprint}`);
      out(`  subject ${added.subject}; valid ${added.notBefore} to ${added.notAfter}`);
    },
  ),
  command('certs list', "list a bank's certificates with their thumbprints, validity and revocation", { bank: BANK }, async ({ admin }, o) => {
    const certificates = await admin.listCertificates(o.bank.trim());
    table(
      ['thumbprint (kid)', 'subject', 'not before', 'not after', 'source', 'revoked'],
      certificates.map((c) => [c.thumbprint, c.subject, c.notBefore, c.notAfter, c.source, c.revokedAt ?? '-']),
    );
  }),
  command(
    'certs revoke',
    'revoke a certificate: requests signed with it are refused (UNKNOWN_KEY) from the next second',
    { bank: BANK, thumbprint: { type: 'string', value: 'KID', help: 'the thumbprint (kid) from certs list', required: true } },
    async ({ admin }, o) => {
      await admin.revokeCertificate(o.bank.trim(), o.thumbprint.trim());
      out(`revoked ${o.thumbprint} of ${o.bank}`);
    },
  ),
  command(
    'mac-key set',
    "set a bank's ISO 8583 MAC key (32 hex digits in the file), or with --next the key a rotation moves to; stored sealed, never printed: only its check value",
    {
      bank: BANK,
      file: { type: 'string', value: 'FILE', help: 'a file holding the double-length 3DES key as 32 hex digits (not given on the command line, so it stays out of shell history)', required: true },
      next: NEXT_KEY,
    },
    async ({ admin }, o) => {
      const { checkValue } = await admin.setMacKey(o.bank.trim(), readFile(o.file), o.next ? 'next' : 'current');
      out(`${o.next ? 'next MAC key' : 'MAC key'} of ${o.bank} set; key check value ${checkValue}`);
    },
  ),
  command(
    'mac-key generate',
    "KEY_STORE=pkcs11: make a bank's MAC key (or with --next, the key a rotation moves to) in the token; prints only its check value, for the bank's key custodians",
    { bank: BANK, next: NEXT_KEY },
    async ({ admin }, o) => {
      const { checkValue } = await admin.generateMacKey(o.bank.trim(), o.next ? 'next' : 'current');
      out(`${o.next ? 'next MAC key' : 'MAC key'} of ${o.bank} generated in the token; key check value ${checkValue}`);
    },
  ),
  command(
    'mac-key import',
    "KEY_STORE=pkcs11: import a bank's MAC key (or with --next, its next key) from its cryptogram under a zone master key held in the token; refused, nothing kept, when the key check value differs",
    {
      bank: BANK,
      under: { type: 'string', value: 'ZMK', help: 'the label of the zone master key in the token', required: true },
      cryptogram: {
        type: 'string',
        value: 'HEX',
        help: 'the key under the zone key: 32 hex digits under a 3DES zone key (3DES-ECB); 96 under an AES zone key (each half Ki‖Ki wrapped with RFC 3394)',
        required: true,
      },
      kcv: { type: 'string', value: 'HEX', help: 'the key check value that came with the key (6 hex digits)', required: true },
      next: NEXT_KEY,
    },
    async ({ admin }, o) => {
      const { checkValue } = await admin.importMacKey(o.bank.trim(), o.next ? 'next' : 'current', o.under.trim(), o.cryptogram, o.kcv);
      out(`${o.next ? 'next MAC key' : 'MAC key'} of ${o.bank} imported into the token; key check value ${checkValue} matches`);
    },
  ),
  command(
    'hash-key generate',
    'KEY_STORE=pkcs11: make the PAN or subject hash key (HMAC-SHA-256) in the token; once per token, before the first start',
    { name: { type: 'string', value: 'pan|subject', help: 'pan (PANs stored hashed) or subject (national IDs on the ops stream)', required: true } },
    async ({ admin }, o) => {
      await admin.generateHashKey(o.name.trim());
      out(`${o.name} hash key generated in the token`);
    },
  ),
  command(
    'mac-key promote',
    "end a bank's MAC key rotation: its next key becomes the current one, and answers are MAC'd under it",
    { bank: BANK },
    async ({ admin }, o) => {
      const { checkValue } = await admin.promoteMacKey(o.bank.trim());
      out(`next MAC key of ${o.bank} promoted to current; key check value ${checkValue}`);
    },
  ),
  command('channels enable', 'enable a channel for a bank', { bank: BANK, channel: CHANNEL }, async ({ admin }, o) => {
    const channels = await admin.setChannel(o.bank.trim(), o.channel.trim(), true);
    out(`${o.bank} channels: ${channels.join(', ')}`);
  }),
  command('channels disable', 'disable a channel for a bank: its requests on it are rejected (CHANNEL_NOT_ALLOWED; 58 on ISO 8583)', { bank: BANK, channel: CHANNEL }, async ({ admin }, o) => {
    const channels = await admin.setChannel(o.bank.trim(), o.channel.trim(), false);
    out(`${o.bank} channels: ${channels.join(', ') || '(none)'}`);
  }),
  command(
    'requests show',
    'show one activation request, its decision, result and events (national ID and mobile masked)',
    {
      bank: { type: 'string', value: 'CODE', help: 'the bank code (with --request-id)' },
      'request-id': { type: 'string', value: 'ID', help: "the bank's X-Request-Id (for ATM: acquirer:field7:STAN:RRN:terminal)" },
      'activation-id': { type: 'string', value: 'UUID', help: 'the activation id' },
    },
    async ({ admin }, o) => {
      const request = await admin.showRequest({ bankCode: o.bank, requestId: o['request-id'], activationId: o['activation-id'] });
      if (!request) throw new RegistryChangeError('no such request');
      out(JSON.stringify(request, null, 2));
    },
    '(--bank CODE --request-id ID | --activation-id UUID)',
  ),
  command(
    'audit list',
    'the registry audit trail: who changed what, when (newest first)',
    {
      bank: { type: 'string', value: 'CODE', help: 'only this bank' },
      limit: { type: 'integer', value: 'N', min: 1, default: 50, help: 'how many entries' },
    },
    async ({ admin }, o) => {
      const entries = await admin.audit(o.bank, o.limit);
      table(
        ['at', 'operator', 'action', 'bank', 'details'],
        entries.map((e) => [e.at, e.operator, e.action, e.bank ?? '-', JSON.stringify(e.details)]),
      );
    },
  ),
  localCommand(
    'dev-cert issue',
    'development only: a signing key for a bank and its certificate from the development CA (config/pki), with its kid and how to register it; refused off the embedded defaults (DATABASE_URL or KAFKA_BROKERS set, or TRUST_ANCHORS not the development CA)',
    {
      bank: { type: 'string', value: 'CODE', help: "the bank code, the 4 letters of the bank's BIC", required: true },
      alg: { type: 'string', value: 'ES256|PS256', default: 'ES256', help: 'ES256 (an EC P-256 key) or PS256 (an RSA 2048 key)' },
      days: { type: 'integer', value: 'N', min: 1, max: 3650, default: 365, help: 'days the certificate is valid (at most until the development CA expires)' },
      out: { type: 'string', value: 'DIR', help: 'where to write <bank>-signing-<alg>.key.pem (owner-only) and .cert.pem; existing files are never overwritten (default: DATA_DIR/dev-certs, inside .data, which git ignores)' },
    },
    async (o) => {
      const algorithm = o.alg.trim().toUpperCase();
      if (!SIGNING_ALGORITHMS.includes(algorithm as SigningAlgorithm)) throw new UsageError(`--alg must be ${SIGNING_ALGORITHMS.join(' or ')} (got ${JSON.stringify(o.alg)})`);
      const issued = issueDevelopmentCertificate({
        bankCode: o.bank.trim(),
        algorithm: algorithm as SigningAlgorithm,
        validityDays: o.days,
        outDir: o.out,
        workingDirectory: fromWorkingDirectory('.'),
      });
      for (const line of issued.instructions) out(line);
    },
  ),
];

/** `npm run cli -- --help`: the commands, each with its own --help. */
const CLI = defineTool({
  name: 'cli',
  synopsis: '<command> [options]',
  summary: "The operators' tool for the bank registry, the gateway instances and the outbox (and, on the development defaults, certificates for development banks). `npm run cli -- <command> --help` gives a command's options.",
  options: GLOBAL,
  more: [
    'commands:',
    ...COMMANDS.map((c) => hanging(`  ${c.tool.command}`, c.tool.summary, 20)),
    '',
    "Configuration: the gateway's own variables (DATABASE_URL, KEY_ENCRYPTION_KEY, TRUST_ANCHORS, ...).",
    'Without DATABASE_URL it connects to the embedded database of the gateway running in DATA_DIR.',
    '',
    'Exit codes: 0 done, 1 refused (the message says why), 2 a mistake on the command line, 70 an unexpected error.',
  ].join('\n'),
});

function list(value: string): string[] {
  return value.split(',').map((v) => v.trim()).filter(Boolean);
}

function table(headers: string[], rows: string[][]): void {
  if (rows.length === 0) {
    out('(none)');
    return;
  }
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  out(line(headers));
  for (const row of rows) out(line(row));
}

function readFile(path: string): string {
  const file = fromWorkingDirectory(path);
  if (!existsSync(file)) throw new UsageError(`--file ${file} does not exist`);
  return readFileSync(file, 'utf8');
}

function databaseUrl(config: GatewayConfig): string {
  if (config.DATABASE_URL) return config.DATABASE_URL;
  const file = join(config.DATA_DIR, EMBEDDED_DATABASE_URL_FILE);
  if (!existsSync(file)) throw new ConfigurationError(`DATABASE_URL is unset and no gateway with an embedded database is running in DATA_DIR (${config.DATA_DIR}): start it (npm start) or set DATABASE_URL`);
  return readFileSync(file, 'utf8').trim();
}

/** Runs one command: the gateway's configuration and store (for a command on the store), then the command; a refusal is one line and exit code 1. */
async function execute(command: Command, values: Record<string, unknown>): Promise<number> {
  try {
    // Warnings about development defaults go to stderr as JSON, like the gateway's; the answer goes to stdout.
    JsonLogger.write = (line) => process.stderr.write(line);
    JsonLogger.setLevel('warn');
    if (!command.store) {
      await command.run(values);
      return 0;
    }
    const config = loadConfig();
    const operator = String(values.operator ?? process.env.ABSHER_OPERATOR ?? userInfo().username);
    const dataSource = createDataSource(databaseUrl(config), 2);
    await dataSource.initialize();
    let keys: KeyStore | null = null;
    try {
      keys = KeyStore.open(config);
      await command.run({ admin: bankRegistryAdmin(dataSource, config, keys, operator), dataSource }, values);
      return 0;
    } finally {
      keys?.close();
      await dataSource.destroy();
    }
  } catch (error) {
    if (error instanceof UsageError) throw error;
    if (error instanceof RegistryChangeError || error instanceof ConfigurationError) {
      process.stderr.write(`cli: ${error.message}\n`);
      return 1;
    }
    process.stderr.write(`cli failed: ${(error as Error).stack ?? String(error)}\n`);
    return 70;
  }
}

/** The command is the leading words (`banks list`); the rest are its options. */
function main(argv: readonly string[]): void {
  const firstOption = argv.findIndex((arg) => arg.startsWith('-'));
  const words = firstOption === -1 ? [...argv] : argv.slice(0, firstOption);
  if (words.length === 0) {
    readOptions(CLI, argv);
    process.exit(reportUsageError(CLI, new UsageError('a command is required; npm run cli -- --help lists them')));
  }
  const name = words.slice(0, 2).join(' ');
  const command = COMMANDS.find((c) => c.tool.command === name);
  if (!command) {
    const group = COMMANDS.map((c) => c.tool.command!).filter((c) => c.startsWith(`${words[0]} `));
    let problem = `unknown command "${words.join(' ')}"; npm run cli -- --help lists the commands`;
    if (group.length && words.length === 1) problem = `"${words[0]}" needs a command: ${group.join(', ')}`;
    else if (group.length) problem = `unknown command "${words.join(' ')}"; the ${words[0]} commands are ${group.join(', ')}`;
    process.exit(reportUsageError(CLI, new UsageError(problem)));
  }
  exitWith(command.tool, execute(command, readOptions(command.tool, argv.slice(2))));
}

main(process.argv.slice(2));
