import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { CertificateInfo, parseCertificateBundle, withinValidity } from '../libs/pki';
import { issueCertificate } from '../libs/pki/certificate-builder';
import { projectRoot } from '../src/common/project-root';
import { ConfigurationError, loadConfig } from '../src/config/gateway-config';
import { UsageError } from './options';

/**
 * `npm run cli -- dev-cert issue`: a signing key and certificate for another
 * development bank, issued by the development CA of config/pki (the one
 * `tools/dev-pki.ts` made and whose key is committed), so that a bank
 * integrator can try a bank of their own against `npm start` without a CA.
 * Only on the embedded defaults: a certificate from a CA whose key is public
 * must never be trusted by a gateway with a real database or Kafka.
 */

/** The development CA's key, committed with the development PKI; only read, never copied. */
export const DEVELOPMENT_CA_KEY = join(projectRoot(), 'config/pki/dev/root-ca.key.pem');
/** The gateway's development response-signing certificate (GATEWAY_SIGNING_CERT unset). */
const DEVELOPMENT_GATEWAY_CERT = join(projectRoot(), 'config/pki/dev/gateway-signing.cert.pem');

export type SigningAlgorithm = 'ES256' | 'PS256';
export const SIGNING_ALGORITHMS: readonly SigningAlgorithm[] = ['ES256', 'PS256'];

export interface DevelopmentCertificateRequest {
  bankCode: string;
  algorithm: SigningAlgorithm;
  validityDays: number;
  /** Where the key and certificate go; by default DATA_DIR/dev-certs (inside .data, which git ignores). */
  outDir: string | undefined;
  /** The directory relative paths are read from and printed against (where npm was run). */
  workingDirectory: string;
}

export interface IssuedDevelopmentCertificate {
  keyFile: string;
  certificateFile: string;
  certificate: CertificateInfo;
  /** What was issued and what to do next, to print. */
  instructions: string[];
}

const DAY = 86_400_000;

/** The issuing half: checks that the gateway runs on its development defaults, then issues and writes. */
export function issueDevelopmentCertificate(request: DevelopmentCertificateRequest): IssuedDevelopmentCertificate {
  const env = process.env;
  const { bankCode, algorithm } = request;
  if (!/^[A-Z]{4}$/.test(bankCode)) throw new UsageError(`--bank must be the 4 capital letters of the bank's BIC, e.g. NEWB (got ${JSON.stringify(bankCode)})`);

  // As loadConfig reads them: an empty variable is unset.
  const real = (['DATABASE_URL', 'KAFKA_BROKERS'] as const).filter((name) => (env[name] ?? '').trim() !== '');
  if (real.length) {
    throw new ConfigurationError(
      `dev-cert issue refused: ${real.join(' and ')} ${real.length === 1 ? 'is' : 'are'} set. It issues from the development CA, whose key is public, so only on the embedded development defaults (no DATABASE_URL or KAFKA_BROKERS, the development CA as TRUST_ANCHORS). A real deployment's bank certificates come from a CA its operators trust (certs add)`,
    );
  }
  const config = loadConfig(env);
  const authority = developmentAuthority(config.TRUST_ANCHORS);

  const outDir = request.outDir === undefined ? resolve(config.DATA_DIR, 'dev-certs') : resolve(request.workingDirectory, request.outDir);
  const name = `${bankCode.toLowerCase()}-signing-${algorithm.toLowerCase()}`;
  const keyFile = join(outDir, `${name}.key.pem`);
  const certificateFile = join(outDir, `${name}.cert.pem`);
  // A key may already be registered somewhere: never replace one.
  for (const file of [keyFile, certificateFile]) {
    if (existsSync(file)) throw new UsageError(`${file} already exists and is never overwritten: remove it, or give another --out`);
  }

  const keys = algorithm === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const now = Date.now();
  // Never past the CA's own end: the chain would expire first.
  const notAfter = Math.min(now + request.validityDays * DAY, authority.certificate.notAfter.getTime());
  const pem = issueCertificate({
    subject: { commonName: `${bankCode} request signing ${algorithm} (development)`, organization: 'DEVELOPMENT ONLY', country: 'SA' },
    publicKey: keys.publicKey,
    issuer: { certificatePem: authority.certificate.x509.toString(), privateKey: authority.key },
    notBefore: new Date(now - 3_600_000), // an hour back, for a clock a little behind
    notAfter: new Date(notAfter),
    keyUsage: ['digitalSignature'],
  });
  const [certificate] = parseCertificateBundle(pem);

  mkdirSync(outDir, { recursive: true, mode: 0o700 });
  // 'wx': fails rather than follows a file (or link) that appeared since the check above.
  writeFileSync(keyFile, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  writeFileSync(certificateFile, pem, { mode: 0o644, flag: 'wx' });

  const shown = (file: string) => {
    const path = relative(request.workingDirectory, file);
    return path && !path.startsWith('..') && !isAbsolute(path) ? path : file;
  };
  const gatewayCert = config.GATEWAY_SIGNING_CERT ? resolve(config.GATEWAY_SIGNING_CERT) : DEVELOPMENT_GATEWAY_CERT;
  const clipped = notAfter < now + request.validityDays * DAY ? ' (clipped to the development CA\'s own end)' : '';
  const instructions = [
    `issued a DEVELOPMENT signing certificate for ${bankCode}, signed by the development CA (${authority.certificate.subject})`,
    `  key          ${shown(keyFile)} (${certificate.keyDescription}; readable by you only; it signs ${algorithm})`,
    `  certificate  ${shown(certificateFile)}`,
    `  kid          ${certificate.thumbprint} (x5t#S256: SHA-256 of the certificate's DER, base64url)`,
    `  subject      ${certificate.subject}`,
    `  valid        ${certificate.notBefore.toISOString()} to ${certificate.notAfter.toISOString()}${clipped}; key usage digitalSignature`,
    '',
    'Next, with the gateway running on its defaults (npm start), register it:',
    `  npm run cli -- banks register --code ${bankCode} --name "${bankCode} (development)" --channels INTERNET_BANKING --rate 100`,
    `  npm run cli -- certs add --bank ${bankCode} --file ${shown(certificateFile)}`,
    `(the first only if ${bankCode} is not registered yet; for ATMs add --acquirer ID and set a MAC key with mac-key set).`,
    `Or list it under ${bankCode} in BANKS_FILE (${config.BANKS_FILE}) and restart the gateway:`,
    `    certificates: [${certificateFile}]`,
    `Then sign requests as ${bankCode} with the key (alg ${algorithm}, kid ${certificate.thumbprint}), for example with the conformance kit and the customers npm run conformance:dev-customers writes:`,
    `  npm run --silent conformance -- --bank ${bankCode} --url http://127.0.0.1:${config.HTTP_PORT} --key ${shown(keyFile)} --cert ${shown(certificateFile)} --gateway-cert ${shown(gatewayCert)} --customers customers.json`,
  ];
  return { keyFile, certificateFile, certificate, instructions };
}

/**
 * The development CA, when it is what the gateway trusts: every certificate of
 * TRUST_ANCHORS must be the one whose key is DEVELOPMENT_CA_KEY. The bundle's
 * content decides, not its path: a deployment that put its own CA in
 * config/pki/trust-anchors.pem is not on development keys.
 */
function developmentAuthority(trustAnchors: string): { certificate: CertificateInfo; key: KeyObject } {
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(DEVELOPMENT_CA_KEY, 'utf8'));
  } catch (error) {
    throw new ConfigurationError(`dev-cert issue refused: the development CA key ${DEVELOPMENT_CA_KEY} cannot be read (${(error as Error).message})`);
  }
  const publicKey = createPublicKey(key).export({ type: 'spki', format: 'der' });
  let anchors: CertificateInfo[];
  try {
    anchors = parseCertificateBundle(readFileSync(trustAnchors, 'utf8'));
  } catch (error) {
    throw new ConfigurationError(`TRUST_ANCHORS ${trustAnchors} cannot be read as a PEM bundle: ${(error as Error).message}`);
  }
  const others = anchors.filter((anchor) => !anchor.publicKey.export({ type: 'spki', format: 'der' }).equals(publicKey));
  if (anchors.length === 0 || others.length) {
    const listed = others.slice(0, 3).map((o) => `"${o.subject}"`).join(', ') + (others.length > 3 ? ` and ${others.length - 3} more` : '');
    const named = others.length ? `: it trusts ${listed}` : ': it holds no certificate';
    throw new ConfigurationError(
      `dev-cert issue refused: TRUST_ANCHORS (${resolve(trustAnchors)}) is not the development CA${named}. It issues only for a gateway that trusts the development CA alone (the default TRUST_ANCHORS, config/pki/trust-anchors.pem)`,
    );
  }
  const certificate = anchors[0];
  if (!withinValidity(certificate, new Date())) {
    throw new ConfigurationError(`dev-cert issue refused: the development CA is outside its validity (${certificate.notBefore.toISOString()} to ${certificate.notAfter.toISOString()}); make a new development PKI (tools/dev-pki.ts)`);
  }
  return { certificate, key };
}
