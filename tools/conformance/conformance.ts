/**
 * `npm run conformance`: the conformance kit a partner bank runs against the
 * gateway's test environment before it goes live. It sends the
 * standard cases of the partner interface (signed JSON, spec 3; ISO 8583,
 * spec 4), checks every answer, and prints a Markdown report the bank sends
 * in with its onboarding request. `--help` explains every option.
 *
 * It only uses what a bank has: its key and certificate, the gateway's
 * certificate, its acquirer id and MAC key, and test customers the operator
 * registered. It never touches the gateway's database or Kafka.
 */
import { createPrivateKey, KeyObject, randomInt } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { algorithmFor } from '../../libs/jws';
import { CertificateInfo, parseCertificateBundle } from '../../libs/pki';
import { projectRoot } from '../../src/common/project-root';
import { loadCustomers, TestCustomers } from './customers';
import { IsoTarget, runIsoCases } from './iso-cases';
import { keyCheckValue } from '../../libs/iso8583';
import { JsonTarget, runJsonCases } from './json-cases';
import { exitWith, readOptions, UsageError } from '../options';
import { KIT, KitOptions, kitOptions } from './options';
import { EXIT_CODES, renderReport, ReportHeader, ReportSection, verdictOf } from './report';

function readCertificate(option: string, path: string): CertificateInfo {
  let certificates: CertificateInfo[];
  try {
    certificates = parseCertificateBundle(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new UsageError(`--${option} ${path}: not a readable PEM certificate (${(error as Error).message})`);
  }
  if (!certificates.length) throw new UsageError(`--${option} ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return certificates[0];
}

function readPrivateKey(path: string): KeyObject {
  try {
    const key = createPrivateKey(readFileSync(path));
    algorithmFor(key);
    return key;
  } catch (error) {
    // OpenSSL's messages name the problem, never the key's bytes.
    throw new UsageError(`--key ${path}: not an unencrypted PEM private key for ES256 or PS256 (${(error as Error).message})`);
  }
}

function describeCertificate(certificate: CertificateInfo): string {
  const algorithm = certificate.publicKey.asymmetricKeyType === 'ec' ? 'ES256' : 'PS256';
  return (
    `subject ${certificate.subject}; issuer ${certificate.issuer}; kid (SHA-256 thumbprint) ${certificate.thumbprint}; ` +
    `valid ${certificate.notBefore.toISOString()} to ${certificate.notAfter.toISOString()}; ${certificate.keyDescription} (${algorithm})`
  );
}

function kitName(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { name?: string; version?: string };
    return `${pkg.name ?? 'absher-bank-gateway'} ${pkg.version ?? ''} conformance kit; partner interface version 1`;
  } catch {
    return 'absher-bank-gateway conformance kit; partner interface version 1';
  }
}

/** Letters only: a run of digits in a reference could be taken for a national ID or mobile by the masking. */
function letters(count: number): string {
  return Array.from({ length: count }, () => String.fromCharCode(65 + randomInt(26))).join('');
}

export async function runConformance(options: KitOptions): Promise<{ report: string; exitCode: number }> {
  const customers: TestCustomers = options.customersFile ? loadCustomers(options.customersFile) : {};
  const customersGiven = options.customersFile !== null;
  const header: ReportHeader = { date: new Date(), kit: kitName(), bank: options.bank, rows: [], notChecked: [] };
  const sections: ReportSection[] = [];

  let jsonTarget: JsonTarget | null = null;
  if (options.json) {
    const certificate = readCertificate('cert', options.json.certFile);
    const gatewayCertificate = options.json.gatewayCertFile ? readCertificate('gateway-cert', options.json.gatewayCertFile) : null;
    jsonTarget = {
      baseUrl: options.json.baseUrl,
      identity: { bankCode: options.bank, privateKey: readPrivateKey(options.json.keyFile), keyId: certificate.thumbprint },
      certificate,
      channel: options.json.channel,
      gateway: gatewayCertificate ? { certificate: gatewayCertificate, issuer: options.json.gatewayId } : null,
      timeoutMs: options.timeoutMs,
      runTag: `${Date.now().toString(36)}${letters(4).toLowerCase()}`,
    };
    header.rows.push(['gateway (signed JSON)', options.json.baseUrl], ['channel', options.json.channel], ['signing certificate', describeCertificate(certificate)]);
    if (gatewayCertificate) {
      header.rows.push(['gateway certificate', `${describeCertificate(gatewayCertificate)}; iss ${options.json.gatewayId}`]);
    } else {
      header.rows.push(['gateway certificate', 'not given (--gateway-cert): response signatures not checked']);
      header.notChecked.push('the gateway\'s response signatures: no --gateway-cert was given');
    }
  }
  let isoTarget: IsoTarget | null = null;
  if (options.iso) {
    isoTarget = { ...options.iso, timeoutMs: options.timeoutMs, runTag: letters(3) };
    const pan = options.iso.pan;
    header.rows.push([
      'gateway (ISO 8583)',
      `${options.iso.host}:${options.iso.port}; acquirer ${options.iso.acquirer}; terminal ${options.iso.terminal}; PAN ${pan.slice(0, 6)}${'*'.repeat(pan.length - 10)}${pan.slice(-4)}; MAC key check value (KCV) ${keyCheckValue(options.iso.macKey)}`,
    ]);
  }
  const given = Object.keys(customers);
  header.rows.push(['test customers', options.customersFile ? `${basename(options.customersFile)}: ${given.length ? given.join(', ') : 'none'}` : 'none given (--customers)']);

  if (jsonTarget) sections.push({ title: 'Signed JSON (spec 3)', cases: await runJsonCases(jsonTarget, customers, customersGiven) });
  if (isoTarget) sections.push({ title: 'ISO 8583 (spec 4)', cases: await runIsoCases(isoTarget, customers, customersGiven) });
  return { report: renderReport(header, sections), exitCode: EXIT_CODES[verdictOf(sections, header.notChecked)] };
}

async function main(options: KitOptions): Promise<number> {
  try {
    const { report, exitCode } = await runConformance(options);
    process.stdout.write(`${report}\n`);
    if (options.reportFile) {
      writeFileSync(options.reportFile, `${report}\n`);
      process.stderr.write(`conformance: report written to ${options.reportFile}\n`);
    }
    return exitCode;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    // A fault of the kit itself, not of the gateway or the bank: no report, and a code of its own (EX_SOFTWARE).
    process.stderr.write(`conformance: unexpected error: ${(error as Error).stack ?? String(error)}\n`);
    return 70;
  }
}

if (require.main === module) {
  const values = readOptions(KIT);
  exitWith(KIT, Promise.resolve().then(() => main(kitOptions(values))));
}
