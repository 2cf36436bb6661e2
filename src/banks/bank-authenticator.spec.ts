import { generateKeyPairSync } from 'node:crypto';
import { signBankRequest } from '../../libs/jws/request-signing';
import { parseCertificateBundle, verifyChain } from '../../libs/pki';
import { issueCertificate } from '../../libs/pki/certificate-builder';
import { GatewayError } from '../common/gateway-error';
import { BankAuthenticator } from './bank-authenticator';
import { BankDirectory, BankProfile } from './bank-directory';

const DAY = 86_400_000;
const start = Date.parse('2026-11-23T10:00:00Z');
const rootKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const intermediateKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const bankKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const root = issueCertificate({ subject: { commonName: 'Root' }, publicKey: rootKey.publicKey, selfSigningKey: rootKey.privateKey, notBefore: new Date(start - DAY), notAfter: new Date(start + 100 * DAY), isCertificateAuthority: true, keyUsage: ['keyCertSign'] });
// The intermediate expires in 10 days, the bank's certificate in 300.
const intermediate = issueCertificate({ subject: { commonName: 'Issuing CA' }, publicKey: intermediateKey.publicKey, issuer: { certificatePem: root, privateKey: rootKey.privateKey }, notBefore: new Date(start - DAY), notAfter: new Date(start + 10 * DAY), isCertificateAuthority: true, keyUsage: ['keyCertSign'] });
const leafPem = issueCertificate({ subject: { commonName: 'TSTA' }, publicKey: bankKey.publicKey, issuer: { certificatePem: intermediate, privateKey: intermediateKey.privateKey }, notBefore: new Date(start - DAY), notAfter: new Date(start + 300 * DAY), keyUsage: ['digitalSignature'] });
const [leaf] = parseCertificateBundle(leafPem);
const chain = verifyChain(leaf, parseCertificateBundle(intermediate), parseCertificateBundle(root));

const bank: BankProfile = {
  code: 'TSTA',
  name: 'Test',
  channels: new Set(['INTERNET_BANKING']),
  acquirerIds: [],
  rateLimitPerSecond: 10,
  certificates: new Map([[leaf.thumbprint, { info: leaf, trustProblem: null, issuers: chain.trusted ? chain.issuers : [] }]]),
  macKey: null,
  macKeyNext: null,
  tlsClients: new Set(),
};
const directory = { get: (code: string) => (code === 'TSTA' ? bank : undefined) } as unknown as BankDirectory;

async function authenticateAt(now: number): Promise<string> {
  const body = Buffer.from('{}');
  const headers = signBankRequest({ bankCode: 'TSTA', privateKey: bankKey.privateKey, keyId: leaf.thumbprint }, { method: 'POST', path: '/v1/activations', requestId: 'r1', body }, { iat: Math.floor(now / 1000) });
  const authenticator = new BankAuthenticator(directory, 300, () => now);
  try {
    await authenticator.authenticate({ method: 'POST', path: '/v1/activations', bankId: 'TSTA', requestId: 'r1', signature: headers['x-jws-signature'], body });
    return 'OK';
  } catch (error) {
    return (error as GatewayError).code;
  }
}

describe('BankAuthenticator and the clock', () => {
  it('the chain through an intermediate is trusted', () => {
    expect(chain.trusted).toBe(true);
  });

  it('checks the issuing CA’s dates on every request, not only at start', async () => {
    expect(await authenticateAt(start)).toBe('OK');
    expect(await authenticateAt(start + 11 * DAY)).toBe('CERTIFICATE_EXPIRED');
  });

  it('checks the leaf’s own dates on every request', async () => {
    expect(await authenticateAt(start + 301 * DAY)).toBe('CERTIFICATE_EXPIRED');
  });
});
