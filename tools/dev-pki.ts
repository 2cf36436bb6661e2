/**
 * Writes the DEVELOPMENT-ONLY PKI in config/pki: a root CA (the default
 * TRUST_ANCHORS), two signing certificates for the development bank DEVB
 * (ES256 and PS256, to show several certificates per bank) and the gateway's
 * development response-signing pair. Run: npm run build && node dist/tools/dev-pki.js
 * Never use these keys anywhere but a developer's machine.
 */
import { generateKeyPairSync, KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { issueCertificate } from '../libs/pki/certificate-builder';
import { projectRoot } from '../src/common/project-root';
import { defineTool, readOptions } from './options';

// Read first: a mistyped option must not overwrite the committed PKI.
readOptions(
  defineTool({
    name: 'dev-pki',
    invocation: 'node dist/tools/dev-pki.js',
    summary: 'Writes a new DEVELOPMENT-ONLY PKI into config/pki, replacing the committed one: a root CA, DEVB\'s ES256 and PS256 signing certificates and the gateway\'s response-signing pair.',
    options: {},
  }),
);

const root = join(projectRoot(), 'config/pki');
const dev = join(root, 'dev');
mkdirSync(dev, { recursive: true });
const day = 86_400_000;
const notBefore = new Date(Date.now() - day);
const notAfter = new Date(Date.now() + 3650 * day);
const pem = (key: KeyObject) => key.export({ type: 'pkcs8', format: 'pem' }).toString();

const ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const caCert = issueCertificate({
  subject: { commonName: 'Absher Gateway DEVELOPMENT Root CA', organization: 'DEVELOPMENT ONLY', country: 'SA' },
  publicKey: ca.publicKey,
  selfSigningKey: ca.privateKey,
  notBefore,
  notAfter,
  isCertificateAuthority: true,
  keyUsage: ['keyCertSign', 'cRLSign'],
});
writeFileSync(join(root, 'trust-anchors.pem'), caCert);
writeFileSync(join(dev, 'root-ca.key.pem'), pem(ca.privateKey));

function leaf(name: string, commonName: string, keys: { publicKey: KeyObject; privateKey: KeyObject }) {
  const cert = issueCertificate({
    subject: { commonName, organization: 'DEVELOPMENT ONLY', country: 'SA' },
    publicKey: keys.publicKey,
    issuer: { certificatePem: caCert, privateKey: ca.privateKey },
    notBefore,
    notAfter,
    keyUsage: ['digitalSignature'],
  });
  writeFileSync(join(dev, `${name}.cert.pem`), cert);
  writeFileSync(join(dev, `${name}.key.pem`), pem(keys.privateKey));
}

leaf('devb-signing-es256', 'DEVB request signing ES256', generateKeyPairSync('ec', { namedCurve: 'P-256' }));
leaf('devb-signing-ps256', 'DEVB request signing PS256', generateKeyPairSync('rsa', { modulusLength: 2048 }));
leaf('gateway-signing', 'absher-bank-gateway DEVELOPMENT response signing', generateKeyPairSync('ec', { namedCurve: 'P-256' }));
process.stdout.write(`development PKI written to ${root}\n`);
