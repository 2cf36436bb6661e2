import { existsSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { parseCertificateBundle } from '../libs/pki';
import { BankRegistryAdmin, RegistryChangeError } from '../src/banks/bank-registry-admin';
import { keyEncryptionKey } from '../src/banks/banks.module';
import { ConfigurationError, GatewayConfig, loadConfig } from '../src/config/gateway-config';
import { createDataSource } from '../src/database/data-source';
import { EMBEDDED_DATABASE_URL_FILE } from '../src/database/store';
import { JsonLogger } from '../src/logging/json-logger';
import { DataSource } from 'typeorm';
import { listInstances } from '../src/instances/instance-registry';
import { OutboxAdmin } from '../src/outbox/outbox-admin';

/**
 * `npm run cli -- <group> <command> [options]`: the operators' tool for the
 * bank registry, the gateway instances and the outbox. It reads the gateway's own configuration (DATABASE_URL,
 * KEY_ENCRYPTION_KEY, TRUST_ANCHORS, ...), or, on the development defaults,
 * connects to the embedded database of the gateway running in DATA_DIR.
 * Changes take effect in running gateways within a second or two; each is
 * written to the audit trail with the operator's name.
 */
interface Command {
  usage: string;
  summary: string;
  options: [string, string][];
  run(admin: BankRegistryAdmin, options: Options, dataSource: DataSource): Promise<void>;
}

type Options = Record<string, string | true>;

const out = (line = '') => process.stdout.write(`${line}\n`);

const COMMANDS: Record<string, Command> = {
  'instances list': {
    usage: 'instances list',
    summary: 'the gateway instances sharing this database: alive or gone, their relay slots and consumer partitions',
    options: [],
    async run(_admin, _options, dataSource) {
      const instances = await listInstances(dataSource);
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
    },
  },
  'outbox parked': {
    usage: 'outbox parked [--limit 100]',
    summary: 'events Kafka kept refusing (unknown topic, record too large...), parked with the reason; later events of the same key wait behind them',
    options: [['--limit', 'how many (default 100), oldest first']],
    async run(_admin, o, dataSource) {
      const parked = await new OutboxAdmin(dataSource).parked(Number(o['--limit'] ?? 100));
      table(
        ['id', 'topic', 'key', 'type', 'attempts', 'waiting behind', 'parked at', 'reason'],
        parked.map((p) => [p.id, p.topic, p.key, p.type ?? '-', String(p.attempts), String(p.waitingBehind), p.parkedAt, p.reason ?? '-']),
      );
    },
  },
  'outbox requeue': {
    usage: 'outbox requeue --id 1234[,1235]  |  outbox requeue --all',
    summary: 'publish parked events again (after fixing the cause: creating the topic, raising a size limit); the events waiting behind them follow in order',
    options: [
      ['--id', 'parked event ids from outbox parked (comma-separated)'],
      ['--all', 'every parked event'],
    ],
    async run(_admin, o, dataSource) {
      if (!o['--all'] && !o['--id']) throw new RegistryChangeError('--id or --all is required');
      const ids = o['--all'] ? 'all' : list(required(o, '--id'));
      if (ids !== 'all' && ids.some((id) => !/^[0-9]+$/.test(id))) throw new RegistryChangeError('--id takes event ids (whole numbers) from outbox parked');
      const count = await new OutboxAdmin(dataSource).requeue(ids);
      out(`${count} parked event${count === 1 ? '' : 's'} re-queued; the relay publishes ${count === 1 ? 'it' : 'them'} within a second or two`);
    },
  },
  'banks list': {
    usage: 'banks list',
    summary: 'list the partner banks: channels, acquirer ids, rate limit, certificates in use, whether a MAC key is set, who manages them',
    options: [],
    async run(admin) {
      const banks = await admin.listBanks();
      table(
        ['code', 'name', 'channels', 'acquirers', 'rate/s', 'certificates', 'MAC key', 'managed by'],
        banks.map((b) => [b.code, b.name, b.channels.join(','), b.acquirerIds.join(',') || '-', String(b.rateLimitPerSecond), String(b.activeCertificates), b.macKey, b.managedBy]),
      );
    },
  },
  'banks register': {
    usage: 'banks register --code RJHI --name "Al Rajhi Bank" --channels ATM,INTERNET_BANKING [--acquirer 588847[,...]] --rate 200',
    summary: 'register a partner bank (then add its certificates and, for ATM, its MAC key)',
    options: [
      ['--code', "the 4 letters of the bank's BIC"],
      ['--name', 'the bank name'],
      ['--channels', 'comma-separated: ATM, INTERNET_BANKING, PHONE_BANKING'],
      ['--acquirer', 'ISO 8583 field 32 values that identify the bank (comma-separated)'],
      ['--rate', 'requests per second the bank may send (HTTP and ISO 8583 together)'],
    ],
    async run(admin, o) {
      await admin.registerBank({
        code: required(o, '--code'),
        name: required(o, '--name'),
        channels: list(required(o, '--channels')),
        acquirerIds: o['--acquirer'] ? list(String(o['--acquirer'])) : [],
        rateLimitPerSecond: Number(required(o, '--rate')),
      });
      out(`registered ${o['--code']}; next: certs add --bank ${o['--code']} --file <certificate.pem>`);
    },
  },
  'banks set-rate': {
    usage: 'banks set-rate --bank RJHI --rate 300',
    summary: "change a bank's rate limit (requests per second, HTTP and ISO 8583 together)",
    options: [
      ['--bank', 'the bank code'],
      ['--rate', 'requests per second, at least 1'],
    ],
    async run(admin, o) {
      await admin.setRateLimit(required(o, '--bank'), Number(required(o, '--rate')));
      out(`rate limit of ${o['--bank']}: ${o['--rate']} requests per second`);
    },
  },
  'certs add': {
    usage: 'certs add --bank RJHI --file rjhi-signing-2027.pem',
    summary: 'register a signing certificate for a bank (checked against TRUST_ANCHORS); prints its thumbprint, the kid banks sign with',
    options: [
      ['--bank', 'the bank code'],
      ['--file', 'PEM: the certificate, then any intermediates'],
    ],
    async run(admin, o) {
      const file = required(o, '--file');
      if (!existsSync(file)) throw new RegistryChangeError(`--file ${file} does not exist`);
      const added = await admin.addCertificate(required(o, '--bank'), readFileSync(file, 'utf8'));
      out(`added to ${o['--bank']}: thumbprint (kid) ${added.thumbprint}`);
      out(`  subject ${added.subject}; valid ${added.notBefore} to ${added.notAfter}`);
    },
  },
  'certs list': {
    usage: 'certs list --bank RJHI',
    summary: "list a bank's certificates with their thumbprints, validity and revocation",
    options: [['--bank', 'the bank code']],
    async run(admin, o) {
      const certificates = await admin.listCertificates(required(o, '--bank'));
      table(
        ['thumbprint (kid)', 'subject', 'not before', 'not after', 'source', 'revoked'],
        certificates.map((c) => [c.thumbprint, c.subject, c.notBefore, c.notAfter, c.source, c.revokedAt ?? '-']),
      );
    },
  },
  'certs revoke': {
    usage: 'certs revoke --bank RJHI --thumbprint <kid>',
    summary: 'revoke a certificate: requests signed with it are refused (UNKNOWN_KEY) from the next second',
    options: [
      ['--bank', 'the bank code'],
      ['--thumbprint', 'the thumbprint (kid) from certs list'],
    ],
    async run(admin, o) {
      await admin.revokeCertificate(required(o, '--bank'), required(o, '--thumbprint'));
      out(`revoked ${o['--thumbprint']} of ${o['--bank']}`);
    },
  },
  'mac-key set': {
    usage: 'mac-key set --bank RJHI --file rjhi.mac',
    summary: "set or rotate a bank's ISO 8583 MAC key (32 hex digits in the file); stored sealed, never printed: only its check value",
    options: [
      ['--bank', 'the bank code'],
      ['--file', 'a file holding the double-length 3DES key as 32 hex digits (not given on the command line, so it stays out of shell history)'],
    ],
    async run(admin, o) {
      const file = required(o, '--file');
      if (!existsSync(file)) throw new RegistryChangeError(`--file ${file} does not exist`);
      const { checkValue } = await admin.setMacKey(required(o, '--bank'), readFileSync(file, 'utf8'));
      out(`MAC key of ${o['--bank']} set; key check value ${checkValue}`);
    },
  },
  'channels enable': {
    usage: 'channels enable --bank RJHI --channel PHONE_BANKING',
    summary: 'enable a channel for a bank',
    options: [
      ['--bank', 'the bank code'],
      ['--channel', 'ATM, INTERNET_BANKING or PHONE_BANKING'],
    ],
    async run(admin, o) {
      const channels = await admin.setChannel(required(o, '--bank'), required(o, '--channel'), true);
      out(`${o['--bank']} channels: ${channels.join(', ')}`);
    },
  },
  'channels disable': {
    usage: 'channels disable --bank RJHI --channel ATM',
    summary: "disable a channel for a bank: its requests on it are rejected (CHANNEL_NOT_ALLOWED; 58 on ISO 8583)",
    options: [
      ['--bank', 'the bank code'],
      ['--channel', 'ATM, INTERNET_BANKING or PHONE_BANKING'],
    ],
    async run(admin, o) {
      const channels = await admin.setChannel(required(o, '--bank'), required(o, '--channel'), false);
      out(`${o['--bank']} channels: ${channels.join(', ') || '(none)'}`);
    },
  },
  'requests show': {
    usage: 'requests show --bank RJHI --request-id <X-Request-Id>  |  requests show --activation-id <uuid>',
    summary: 'show one activation request, its decision, result and events (national ID and mobile masked)',
    options: [
      ['--bank', 'the bank code (with --request-id)'],
      ['--request-id', "the bank's X-Request-Id (for ATM: acquirer:field7:STAN:RRN:terminal)"],
      ['--activation-id', 'the activation id'],
    ],
    async run(admin, o) {
      const request = await admin.showRequest({
        bankCode: o['--bank'] as string | undefined,
        requestId: o['--request-id'] as string | undefined,
        activationId: o['--activation-id'] as string | undefined,
      });
      if (!request) throw new RegistryChangeError('no such request');
      out(JSON.stringify(request, null, 2));
    },
  },
  'audit list': {
    usage: 'audit list [--bank RJHI] [--limit 50]',
    summary: 'the registry audit trail: who changed what, when (newest first)',
    options: [
      ['--bank', 'only this bank'],
      ['--limit', 'how many entries (default 50)'],
    ],
    async run(admin, o) {
      const entries = await admin.audit(o['--bank'] as string | undefined, Number(o['--limit'] ?? 50));
      table(
        ['at', 'operator', 'action', 'bank', 'details'],
        entries.map((e) => [e.at, e.operator, e.action, e.bank ?? '-', JSON.stringify(e.details)]),
      );
    },
  },
};

const GLOBAL_OPTIONS: [string, string][] = [
  ['--operator', 'who makes the change, for the audit trail (default: ABSHER_OPERATOR, then the login name)'],
  ['--help', 'this help, or a command\'s'],
];

function help(command?: Command): void {
  if (command) {
    out(`usage: npm run cli -- ${command.usage}`);
    out();
    out(command.summary);
    out();
    for (const [name, text] of [...command.options, ...GLOBAL_OPTIONS]) out(`  ${name.padEnd(16)} ${text}`);
    return;
  }
  out('usage: npm run cli -- <command> [options]      (npm run cli -- <command> --help for its options)');
  out();
  for (const [name, c] of Object.entries(COMMANDS)) out(`  ${name.padEnd(18)} ${c.summary}`);
  out();
  out('Configuration: the gateway\'s own variables (DATABASE_URL, KEY_ENCRYPTION_KEY, TRUST_ANCHORS, ...).');
  out('Without DATABASE_URL it connects to the embedded database of the gateway running in DATA_DIR.');
}

function parse(argv: string[]): { name: string; options: Options } {
  const words: string[] = [];
  const options: Options = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg.startsWith('--')) {
      const [key, inline] = arg.split(/=(.*)/s, 2);
      if (inline !== undefined) options[key] = inline;
      else if (argv[i + 1] !== undefined && !argv[i + 1].startsWith('--')) options[key] = argv[++i];
      else options[key] = true;
    } else words.push(arg);
  }
  return { name: words.join(' '), options };
}

function required(options: Options, name: string): string {
  const value = options[name];
  if (typeof value !== 'string' || value.trim() === '') throw new RegistryChangeError(`${name} is required`);
  return value.trim();
}

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

function databaseUrl(config: GatewayConfig): string {
  if (config.DATABASE_URL) return config.DATABASE_URL;
  const file = join(config.DATA_DIR, EMBEDDED_DATABASE_URL_FILE);
  if (!existsSync(file)) throw new ConfigurationError(`DATABASE_URL is unset and no gateway with an embedded database is running in DATA_DIR (${config.DATA_DIR}): start it (npm start) or set DATABASE_URL`);
  return readFileSync(file, 'utf8').trim();
}

async function main(): Promise<number> {
  const { name, options } = parse(process.argv.slice(2));
  const command = COMMANDS[name];
  if (!name) {
    help();
    return options['--help'] ? 0 : 2;
  }
  if (!command) {
    process.stderr.write(`unknown command "${name}"; npm run cli -- --help lists them\n`);
    return 2;
  }
  if (options['--help']) {
    help(command);
    return 0;
  }
  // Warnings about development defaults go to stderr as JSON, like the gateway's; the answer goes to stdout.
  JsonLogger.write = (line) => process.stderr.write(line);
  JsonLogger.setLevel('warn');
  const logger = new JsonLogger('cli');
  const config = loadConfig();
  const operator = String(options['--operator'] ?? process.env.ABSHER_OPERATOR ?? userInfo().username);
  let anchors;
  try {
    anchors = parseCertificateBundle(readFileSync(config.TRUST_ANCHORS, 'utf8'));
  } catch (error) {
    throw new ConfigurationError(`TRUST_ANCHORS ${config.TRUST_ANCHORS} cannot be read as a PEM bundle: ${(error as Error).message}`);
  }
  const dataSource = createDataSource(databaseUrl(config), 2);
  await dataSource.initialize();
  try {
    await command.run(new BankRegistryAdmin(dataSource, anchors, keyEncryptionKey(config, logger), operator), options, dataSource);
    return 0;
  } finally {
    await dataSource.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    const known = error instanceof RegistryChangeError || error instanceof ConfigurationError;
    process.stderr.write(`${known ? '' : 'cli failed: '}${known ? (error as Error).message : ((error as Error).stack ?? error)}\n`);
    process.exit(known ? 1 : 70);
  },
);
