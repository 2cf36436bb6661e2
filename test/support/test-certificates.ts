import { generateKeyPairSync, KeyObject } from 'node:crypto';
import { issueCertificate } from '../../libs/pki/certificate-builder';

const DAY = 86_400_000;

/** A certificate and the private key it certifies. */
export interface IssuedCertificate {
  pem: string;
  key: KeyObject;
}

/** A self-signed EC P-256 CA of a test's own, valid from yesterday for 30 days. */
export function testAuthority(commonName: string): IssuedCertificate {
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = issueCertificate({
    subject: { commonName, organization: 'Test' },
    publicKey: keys.publicKey,
    selfSigningKey: keys.privateKey,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    isCertificateAuthority: true,
    keyUsage: ['keyCertSign', 'cRLSign'],
  });
  return { pem, key: keys.privateKey };
}

/** An end-entity certificate from `issuer`, for a fresh EC P-256 key. */
export function testCertificate(commonName: string, issuer: IssuedCertificate): IssuedCertificate {
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { pem: certifyKey(commonName, issuer, keys.publicKey), key: keys.privateKey };
}

/** An end-entity certificate from `issuer` for a public key whose private half is held elsewhere (a token). */
export function certifyKey(commonName: string, issuer: IssuedCertificate, publicKey: KeyObject): string {
  return issueCertificate({
    subject: { commonName, organization: 'Test' },
    publicKey,
    issuer: { certificatePem: issuer.pem, privateKey: issuer.key },
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    keyUsage: ['digitalSignature', 'keyEncipherment'],
  });
}
