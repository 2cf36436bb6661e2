import { createHash, KeyObject, X509Certificate } from 'node:crypto';
import * as forge from 'node-forge';

/**
 * What the gateway needs to know about one X.509 certificate.
 *
 * Parsing, dates and signature checks use node:crypto's X509Certificate:
 * node-forge cannot read EC public keys (it throws "OID is not RSA"), and the
 * native checks are faster. node-forge's ASN.1 reader supplies what Node does
 * not expose: the keyUsage and basicConstraints extensions.
 */
export interface CertificateInfo {
  readonly x509: X509Certificate;
  readonly der: Buffer;
  /** base64url SHA-256 of the DER: the JWS `kid` / `x5t#S256`. */
  readonly thumbprint: string;
  readonly subject: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKey: KeyObject;
  /** `RSA`, `EC P-256`, ... */
  readonly keyDescription: string;
  /** null when the certificate has no keyUsage extension. */
  readonly keyUsage: ReadonlySet<KeyUsage> | null;
  readonly isCertificateAuthority: boolean;
}

export type KeyUsage =
  | 'digitalSignature'
  | 'nonRepudiation'
  | 'keyEncipherment'
  | 'dataEncipherment'
  | 'keyAgreement'
  | 'keyCertSign'
  | 'cRLSign'
  | 'encipherOnly'
  | 'decipherOnly';

export const KEY_USAGE_BITS: readonly KeyUsage[] = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
];

const OID_KEY_USAGE = '2.5.29.15';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';

export function thumbprintOf(der: Buffer): string {
  return createHash('sha256').update(der).digest('base64url');
}

/** Every certificate of a PEM bundle, in file order. */
export function parseCertificateBundle(pem: string): CertificateInfo[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => inspectCertificate(new X509Certificate(block)));
}

export function inspectCertificate(x509: X509Certificate): CertificateInfo {
  const der = x509.raw;
  const extensions = readExtensions(der);
  const publicKey = x509.publicKey;
  const details = publicKey.asymmetricKeyDetails ?? {};
  const keyDescription =
    publicKey.asymmetricKeyType === 'ec'
      ? `EC ${details.namedCurve === 'prime256v1' ? 'P-256' : details.namedCurve}`
      : `${(publicKey.asymmetricKeyType ?? 'unknown').toUpperCase()}${details.modulusLength ? ` ${details.modulusLength}` : ''}`;
  return {
    x509,
    der,
    thumbprint: thumbprintOf(der),
    subject: x509.subject.replace(/\n/g, ', '),
    issuer: x509.issuer.replace(/\n/g, ', '),
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    publicKey,
    keyDescription,
    keyUsage: extensions.keyUsage,
    isCertificateAuthority: extensions.isCertificateAuthority,
  };
}

function readExtensions(der: Buffer): { keyUsage: Set<KeyUsage> | null; isCertificateAuthority: boolean } {
  const certificate = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
  const tbs = (certificate.value as forge.asn1.Asn1[])[0];
  const tagged = (tbs.value as forge.asn1.Asn1[]).find(
    (node) => node.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && node.type === 3,
  );
  let keyUsage: Set<KeyUsage> | null = null;
  let isCertificateAuthority = false;
  if (!tagged) return { keyUsage, isCertificateAuthority };
  const list = (tagged.value as forge.asn1.Asn1[])[0].value as forge.asn1.Asn1[];
  for (const extension of list) {
    const parts = extension.value as forge.asn1.Asn1[];
    const oid = forge.asn1.derToOid(parts[0].value as string);
    const octets = parts[parts.length - 1].value as string;
    const inner = forge.asn1.fromDer(forge.util.createBuffer(octets));
    if (oid === OID_KEY_USAGE) {
      // BIT STRING: first octet is the count of unused bits, then the bits, most significant first.
      const bytes = inner.value as string;
      keyUsage = new Set();
      KEY_USAGE_BITS.forEach((name, bit) => {
        const byte = bytes.charCodeAt(1 + (bit >> 3));
        if (!Number.isNaN(byte) && byte & (0x80 >> (bit & 7))) keyUsage!.add(name);
      });
    } else if (oid === OID_BASIC_CONSTRAINTS) {
      const fields = inner.value as forge.asn1.Asn1[];
      isCertificateAuthority = fields.length > 0 && fields[0].type === forge.asn1.Type.BOOLEAN && fields[0].value === '\xff';
    }
  }
  return { keyUsage, isCertificateAuthority };
}

export type ChainCheck = { trusted: true; anchor: CertificateInfo; issuers: CertificateInfo[] } | { trusted: false; problem: string };

/**
 * Walks from the leaf through the given intermediates to one of the trust
 * anchors, checking names, signatures and CA flags. Validity dates are not
 * checked here: they change with time, so callers check `issuers` (and the
 * leaf) against the clock each time the certificate is used.
 */
export function verifyChain(leaf: CertificateInfo, intermediates: readonly CertificateInfo[], anchors: readonly CertificateInfo[]): ChainCheck {
  let current = leaf;
  const issuers: CertificateInfo[] = [];
  const seen = new Set<string>([leaf.thumbprint]);
  for (let depth = 0; depth < 8; depth++) {
    const anchor = anchors.find((candidate) => issued(candidate, current));
    if (anchor) return { trusted: true, anchor, issuers: [...issuers, anchor] };
    const next = intermediates.find((candidate) => !seen.has(candidate.thumbprint) && issued(candidate, current));
    if (!next) return { trusted: false, problem: `no trust anchor or intermediate issued "${current.subject}" (issuer "${current.issuer}")` };
    if (!next.isCertificateAuthority || (next.keyUsage && !next.keyUsage.has('keyCertSign'))) {
      return { trusted: false, problem: `intermediate "${next.subject}" is not a certificate authority` };
    }
    issuers.push(next);
    seen.add(next.thumbprint);
    current = next;
  }
  return { trusted: false, problem: 'certificate chain is too long' };
}

function issued(issuer: CertificateInfo, subject: CertificateInfo): boolean {
  return subject.x509.checkIssued(issuer.x509) && subject.x509.verify(issuer.publicKey);
}

export function withinValidity(certificate: CertificateInfo, now: Date): boolean {
  return certificate.notBefore.getTime() <= now.getTime() && now.getTime() <= certificate.notAfter.getTime();
}

/** How a registry entry names a TLS client certificate: its thumbprint (as a JWS kid), or `CN=` and its subject's common name. */
export const TLS_CLIENT_PATTERN = /^([A-Za-z0-9_-]{43}|CN=[^\n]{1,256})$/;

/** Who a TLS client certificate is, as a registry entry names it: worked out once per connection. */
export interface TlsClientIdentity {
  thumbprint: string;
  /** `CN=` and the common name of its subject; null without one. */
  commonName: string | null;
}

/** The identity of a TLS client certificate (DER, as the handshake presented it; its chain was verified there). */
export function tlsClientIdentity(der: Buffer): TlsClientIdentity {
  const commonName = new X509Certificate(der).subject.split('\n').find((part) => part.startsWith('CN=')) ?? null;
  return { thumbprint: thumbprintOf(der), commonName };
}

/** Whether the certificate is one of `allowed`: listed by thumbprint, or by `CN=` and its common name. */
export function tlsClientAllowed(client: TlsClientIdentity, allowed: ReadonlySet<string>): boolean {
  return allowed.has(client.thumbprint) || (client.commonName !== null && allowed.has(client.commonName));
}
