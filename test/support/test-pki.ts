import { generateKeyPairSync, KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { BankSigningIdentity } from '../../libs/jws/request-signing';
import { parseCertificateBundle } from '../../libs/pki';
import { issueCertificate } from '../../libs/pki/certificate-builder';

const DAY = 86_400_000;
/** TSTR's ISO 8583 MAC key (hex, double-length 3DES). */
export const TSTR_MAC_KEY = '0F1E2D3C4B5A69788796A5B4C3D2E1F0';

export interface TestCertificate extends BankSigningIdentity {
  certificatePem: string;
}

export interface TestBank {
  code: string;
  channels: string[];
  /** Signing identities by purpose. */
  es256: TestCertificate;
  ps256: TestCertificate;
}

/**
 * A PKI and bank registry made fresh for a test run: a trusted CA, an
 * untrusted one, and for bank TSTA certificates that are valid (ES256, PS256),
 * expired, not yet valid, issued by the untrusted CA, and without the
 * digitalSignature usage. TSTB is enabled only for PHONE_BANKING. TSTR is
 * limited to 2 requests per second.
 */
export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), 'gateway-pki-'));
  readonly trustAnchorsFile = join(this.dir, 'trust-anchors.pem');
  readonly banksFile = join(this.dir, 'banks.yaml');
  readonly gatewayKeyFile = join(this.dir, 'gateway.key.pem');
  readonly gatewayCertFile = join(this.dir, 'gateway.cert.pem');
  readonly gatewayPublicKey: KeyObject;
  readonly gatewayKeyId: string;
  /** The banks' MAC keys (hex): in BANKS_FILE, or, with the gateway's key in a token, for the test to import there. */
  readonly macKeys: Readonly<Record<string, string>> = { TSTA: '0123456789ABCDEFFEDCBA9876543210', TSTB: 'FEDCBA98765432100123456789ABCDEF', TSTR: TSTR_MAC_KEY };
  private readonly ca = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  private readonly caPem: string;
  private readonly rogue = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  private readonly roguePem: string;

  readonly tsta: TestBank;
  readonly tstb: TestBank;
  /** TSTR: 2 requests per second, over internet banking and ATM (acquirer 333333, MAC key TSTR_MAC_KEY). */
  readonly tstr: TestCertificate;
  readonly expired: TestCertificate;
  readonly notYetValid: TestCertificate;
  readonly untrusted: TestCertificate;
  readonly noSigningUsage: TestCertificate;
  /** A key whose certificate is registered for no bank. */
  readonly unregistered: TestCertificate;

  /**
   * `tokenKey`: the public half of a gateway signing key held in a PKCS#11 token, which the gateway's
   * certificate then certifies; no key file is written, and BANKS_FILE carries no MAC keys (KEY_STORE=pkcs11).
   */
  constructor(options: { tokenKey?: KeyObject } = {}) {
    const now = Date.now();
    this.caPem = this.selfSigned('Test Root CA', this.ca);
    this.roguePem = this.selfSigned('Rogue Root CA', this.rogue);
    writeFileSync(this.trustAnchorsFile, this.caPem);
    let gatewayPublicKey = options.tokenKey;
    if (!gatewayPublicKey) {
      const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      writeFileSync(this.gatewayKeyFile, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      gatewayPublicKey = pair.publicKey;
    }
    const gatewayCert = this.certify('absher-bank-gateway test', gatewayPublicKey, {});
    writeFileSync(this.gatewayCertFile, gatewayCert);
    this.gatewayPublicKey = gatewayPublicKey;
    this.gatewayKeyId = parseCertificateBundle(gatewayCert)[0].thumbprint;

    const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.tsta = {
      code: 'TSTA',
      channels: ['ATM', 'INTERNET_BANKING', 'PHONE_BANKING'],
      es256: this.issue('TSTA', 'TSTA es256', ec(), {}),
      ps256: this.issue('TSTA', 'TSTA ps256', generateKeyPairSync('rsa', { modulusLength: 2048 }), {}),
    };
    this.tstb = {
      code: 'TSTB',
      channels: ['PHONE_BANKING'],
      es256: this.issue('TSTB', 'TSTB es256', ec(), {}),
      ps256: this.issue('TSTB', 'TSTB ps256', generateKeyPairSync('rsa', { modulusLength: 2048 }), {}),
    };
    this.tstr = this.issue('TSTR', 'TSTR es256', ec(), {});
    this.expired = this.issue('TSTA', 'TSTA expired', ec(), { notBefore: new Date(now - 400 * DAY), notAfter: new Date(now - DAY) });
    this.notYetValid = this.issue('TSTA', 'TSTA future', ec(), { notBefore: new Date(now + 10 * DAY), notAfter: new Date(now + 400 * DAY) });
    this.untrusted = this.issue('TSTA', 'TSTA untrusted', ec(), { issuer: 'rogue' });
    this.noSigningUsage = this.issue('TSTA', 'TSTA no signing usage', ec(), { keyUsage: ['keyEncipherment'] });
    this.unregistered = this.issue('TSTA', 'TSTA unregistered', ec(), {});

    const files: Record<string, string[]> = { TSTA: [], TSTB: [], TSTR: [] };
    const write = (name: string, cert: TestCertificate) => {
      const file = join(this.dir, `${name}.pem`);
      writeFileSync(file, cert.certificatePem);
      files[cert.bankCode].push(file);
    };
    write('tsta-es256', this.tsta.es256);
    write('tsta-ps256', this.tsta.ps256);
    write('tsta-expired', this.expired);
    write('tsta-future', this.notYetValid);
    write('tsta-untrusted', this.untrusted);
    write('tsta-no-usage', this.noSigningUsage);
    write('tstb-es256', this.tstb.es256);
    write('tstb-ps256', this.tstb.ps256);
    write('tstr-es256', this.tstr);
    // Under KEY_STORE=pkcs11 a clear key is never given to the gateway: the test imports them into the token.
    const macKey = (code: string) => (options.tokenKey ? {} : { macKey: this.macKeys[code] });
    writeFileSync(
      this.banksFile,
      stringify({
        banks: [
          { code: 'TSTA', name: 'Test Bank A', channels: this.tsta.channels, certificates: files.TSTA, acquirerIds: ['111111'], ...macKey('TSTA'), rateLimitPerSecond: 10000 },
          { code: 'TSTB', name: 'Test Bank B', channels: this.tstb.channels, certificates: files.TSTB, acquirerIds: ['222222'], ...macKey('TSTB'), rateLimitPerSecond: 10000 },
          // ATM too, so that one rate limit can be seen spent on both channels (rate-limits.e2e-spec.ts).
          { code: 'TSTR', name: 'Test Bank Rate-limited', channels: ['ATM', 'INTERNET_BANKING'], certificates: files.TSTR, acquirerIds: ['333333'], ...macKey('TSTR'), rateLimitPerSecond: 2 },
        ],
      }),
    );
  }

  /** A fresh signing certificate from the trusted test CA, registered nowhere yet (for rotation tests). */
  newCertificate(bankCode: string, commonName: string): TestCertificate {
    return this.issue(bankCode, commonName, generateKeyPairSync('ec', { namedCurve: 'P-256' }), {});
  }

  private selfSigned(name: string, keys: { publicKey: KeyObject; privateKey: KeyObject }): string {
    return issueCertificate({
      subject: { commonName: name, organization: 'Tests' },
      publicKey: keys.publicKey,
      selfSigningKey: keys.privateKey,
      notBefore: new Date(Date.now() - 10 * DAY),
      notAfter: new Date(Date.now() + 3650 * DAY),
      isCertificateAuthority: true,
      keyUsage: ['keyCertSign', 'cRLSign'],
    });
  }

  private issue(
    bankCode: string,
    commonName: string,
    keys: { publicKey: KeyObject; privateKey: KeyObject },
    options: CertificateOptions,
  ): TestCertificate {
    const certificatePem = this.certify(commonName, keys.publicKey, options);
    return { bankCode, privateKey: keys.privateKey, keyId: parseCertificateBundle(certificatePem)[0].thumbprint, certificatePem };
  }

  private certify(commonName: string, publicKey: KeyObject, options: CertificateOptions): string {
    const rogue = options.issuer === 'rogue';
    return issueCertificate({
      subject: { commonName, organization: 'Tests' },
      publicKey,
      issuer: { certificatePem: rogue ? this.roguePem : this.caPem, privateKey: rogue ? this.rogue.privateKey : this.ca.privateKey },
      notBefore: options.notBefore ?? new Date(Date.now() - DAY),
      notAfter: options.notAfter ?? new Date(Date.now() + 365 * DAY),
      keyUsage: options.keyUsage ?? ['digitalSignature'],
    });
  }
}

interface CertificateOptions {
  notBefore?: Date;
  notAfter?: Date;
  issuer?: 'rogue';
  keyUsage?: ('digitalSignature' | 'keyEncipherment')[];
}
