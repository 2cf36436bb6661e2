import { KeyObject, randomBytes, sign, X509Certificate } from 'node:crypto';
import * as forge from 'node-forge';
import { KEY_USAGE_BITS, KeyUsage } from './certificate';

/**
 * Issues X.509 v3 certificates for RSA and EC keys: the development PKI in
 * config/pki and the test fixtures (expired, untrusted, wrong key usage).
 * node-forge's own certificate writer only handles RSA keys, so the TBS
 * structure is assembled with forge's ASN.1 and signed with node:crypto.
 * Not used by the running gateway.
 */
export interface CertificateRequest {
  subject: { commonName: string; organization?: string; country?: string };
  publicKey: KeyObject;
  /** The issuer's certificate and key; omitted for a self-signed certificate. */
  issuer?: { certificatePem: string; privateKey: KeyObject };
  /** Needed when self-signed. */
  selfSigningKey?: KeyObject;
  notBefore: Date;
  notAfter: Date;
  isCertificateAuthority?: boolean;
  keyUsage: KeyUsage[];
}

const { asn1 } = forge;
const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  country: '2.5.4.6',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
};

export function issueCertificate(request: CertificateRequest): string {
  const signingKey = request.issuer?.privateKey ?? request.selfSigningKey;
  if (!signingKey) throw new Error('issueCertificate needs an issuer or a selfSigningKey');
  const subjectName = nameToAsn1(request.subject);
  const issuerName = request.issuer ? subjectOf(request.issuer.certificatePem) : subjectName;
  const signatureAlgorithm = algorithmIdentifier(signingKey);
  const serial = randomBytes(16);
  serial[0] &= 0x7f;
  const spki = asn1.fromDer(forge.util.createBuffer(request.publicKey.export({ type: 'spki', format: 'der' }).toString('binary')));

  const tbs = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, '\x02')]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, serial.toString('binary')),
    signatureAlgorithm,
    issuerName,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [timeToAsn1(request.notBefore), timeToAsn1(request.notAfter)]),
    subjectName,
    spki,
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 3, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
        extension(OID.basicConstraints, true, asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true,
          request.isCertificateAuthority ? [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BOOLEAN, false, '\xff')] : [])),
        extension(OID.keyUsage, true, keyUsageBits(request.keyUsage)),
      ]),
    ]),
  ]);
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
  const signature = sign('sha256', tbsDer, signingKey);
  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    algorithmIdentifier(signingKey),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\x00' + signature.toString('binary')),
  ]);
  const der = Buffer.from(asn1.toDer(certificate).getBytes(), 'binary');
  return new X509Certificate(der).toString();
}

function algorithmIdentifier(key: KeyObject): forge.asn1.Asn1 {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') {
    return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(OID.sha256WithRSA).getBytes()),
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
    ]);
  }
  if (type === 'ec') {
    return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(OID.ecdsaWithSha256).getBytes()),
    ]);
  }
  throw new Error(`unsupported issuing key type ${type}`);
}

function nameToAsn1(subject: CertificateRequest['subject']): forge.asn1.Asn1 {
  const rdn = (oid: string, value: string, tag: number) =>
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
        asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(oid).getBytes()),
        asn1.create(asn1.Class.UNIVERSAL, tag, false, forge.util.encodeUtf8(value)),
      ]),
    ]);
  const parts: forge.asn1.Asn1[] = [];
  if (subject.country) parts.push(rdn(OID.country, subject.country, asn1.Type.PRINTABLESTRING));
  if (subject.organization) parts.push(rdn(OID.organization, subject.organization, asn1.Type.UTF8));
  parts.push(rdn(OID.commonName, subject.commonName, asn1.Type.UTF8));
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, parts);
}

function subjectOf(certificatePem: string): forge.asn1.Asn1 {
  const der = new X509Certificate(certificatePem).raw;
  const tbs = (asn1.fromDer(forge.util.createBuffer(der.toString('binary'))).value as forge.asn1.Asn1[])[0];
  const fields = tbs.value as forge.asn1.Asn1[];
  const offset = fields[0].tagClass === asn1.Class.CONTEXT_SPECIFIC ? 1 : 0;
  return fields[offset + 4];
}

function timeToAsn1(date: Date): forge.asn1.Asn1 {
  return date.getUTCFullYear() < 2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(date))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(date));
}

function extension(oid: string, critical: boolean, value: forge.asn1.Asn1): forge.asn1.Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(oid).getBytes()),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BOOLEAN, false, critical ? '\xff' : '\x00'),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, asn1.toDer(value).getBytes()),
  ]);
}

function keyUsageBits(usages: KeyUsage[]): forge.asn1.Asn1 {
  const bytes = [0, 0];
  for (const usage of usages) {
    const bit = KEY_USAGE_BITS.indexOf(usage);
    bytes[bit >> 3] |= 0x80 >> (bit & 7);
  }
  const used = bytes[1] ? bytes : [bytes[0]];
  const last = used[used.length - 1];
  let unused = 0;
  while (unused < 7 && last && !(last & (1 << unused))) unused++;
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, String.fromCharCode(unused, ...used));
}
