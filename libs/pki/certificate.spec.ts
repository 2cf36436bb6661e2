import { generateKeyPairSync } from 'node:crypto';
import { parseCertificateBundle, thumbprintOf, verifyChain } from './certificate';
import { issueCertificate } from './certificate-builder';

const day = 86_400_000;
const now = new Date('2026-11-23T10:00:00Z');
const caKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ca = issueCertificate({
  subject: { commonName: 'Test Root CA', organization: 'Test', country: 'SA' },
  publicKey: caKey.publicKey,
  selfSigningKey: caKey.privateKey,
  notBefore: new Date(now.getTime() - 10 * day),
  notAfter: new Date(now.getTime() + 3650 * day),
  isCertificateAuthority: true,
  keyUsage: ['keyCertSign', 'cRLSign'],
});
const [anchor] = parseCertificateBundle(ca);

function leaf(options: { notBefore?: Date; notAfter?: Date; keyUsage?: ('digitalSignature' | 'keyEncipherment')[] } = {}) {
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = issueCertificate({
    subject: { commonName: 'DEVB signing', organization: 'Dev Bank' },
    publicKey: key.publicKey,
    issuer: { certificatePem: ca, privateKey: caKey.privateKey },
    notBefore: options.notBefore ?? new Date(now.getTime() - day),
    notAfter: options.notAfter ?? new Date(now.getTime() + 365 * day),
    keyUsage: options.keyUsage ?? ['digitalSignature'],
  });
  return parseCertificateBundle(pem)[0];
}

describe('certificates', () => {
  it('reads an EC leaf issued by an RSA CA: key, usage, dates, thumbprint', () => {
    const cert = leaf();
    expect(cert.keyDescription).toBe('EC P-256');
    expect([...(cert.keyUsage ?? [])]).toEqual(['digitalSignature']);
    expect(cert.isCertificateAuthority).toBe(false);
    expect(anchor.isCertificateAuthority).toBe(true);
    expect([...(anchor.keyUsage ?? [])].sort()).toEqual(['cRLSign', 'keyCertSign']);
    expect(cert.thumbprint).toBe(thumbprintOf(cert.der));
    expect(cert.thumbprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(cert.subject).toContain('CN=DEVB signing');
  });

  it('chains to its anchor and not to a stranger', () => {
    expect(verifyChain(leaf(), [], [anchor])).toMatchObject({ trusted: true });
    const strangerKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const stranger = parseCertificateBundle(
      issueCertificate({
        subject: { commonName: 'Test Root CA', organization: 'Test', country: 'SA' }, // same name, other key
        publicKey: strangerKey.publicKey,
        selfSigningKey: strangerKey.privateKey,
        notBefore: new Date(now.getTime() - day),
        notAfter: new Date(now.getTime() + day),
        isCertificateAuthority: true,
        keyUsage: ['keyCertSign'],
      }),
    )[0];
    expect(verifyChain(leaf(), [], [stranger])).toMatchObject({ trusted: false });
  });

  it('reports usage other than digitalSignature', () => {
    expect([...(leaf({ keyUsage: ['keyEncipherment'] }).keyUsage ?? [])]).toEqual(['keyEncipherment']);
  });
});
