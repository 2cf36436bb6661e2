import { spawnSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../src/common/project-root';

/** Debian's SoftHSM2 (package softhsm2), the PKCS#11 token of the KEY_STORE=pkcs11 tests and bench. */
export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/** The built library (dist/), as the token's own processes require it. */
const PKCS11_LIBRARY = join(projectRoot(), 'dist/libs/pkcs11');

/**
 * A SoftHSM2 token of its own in a temporary directory, as a bank's key
 * custodians would prepare an HSM partition for the gateway: the signing key
 * and the hash keys made in it, zone master keys loaded. SoftHSM2 reads
 * SOFTHSM2_CONF from the C environment, so every use of the token runs in a
 * process of its own given that variable (a Jest test's process.env is a copy
 * the native library never sees).
 */
export class SoftHsmToken {
  readonly dir = mkdtempSync(join(tmpdir(), 'gateway-softhsm-'));
  readonly configFile = join(this.dir, 'softhsm2.conf');
  readonly tokenDir = join(this.dir, 'tokens');
  readonly pinFile = join(this.dir, 'pin');
  readonly label = 'gateway';
  readonly signingKeyLabel = 'gateway-signing';
  private readonly pin = '4321';

  constructor() {
    if (!existsSync(SOFTHSM_MODULE)) throw new Error(`${SOFTHSM_MODULE} is missing: install Debian's softhsm2 (.ci/run does)`);
    mkdirSync(this.tokenDir);
    writeFileSync(this.configFile, `directories.tokendir = ${this.tokenDir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    writeFileSync(this.pinFile, `${this.pin}\n`);
    const init = spawnSync('softhsm2-util', ['--init-token', '--free', '--label', this.label, '--pin', this.pin, '--so-pin', '8765'], { env: this.env(), encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`softhsm2-util --init-token: ${init.stderr}`);
  }

  /** The environment every process using the token needs. */
  env(): Record<string, string> {
    return { PATH: process.env.PATH ?? '', SOFTHSM2_CONF: this.configFile };
  }

  /** What a gateway (or the CLI) is given to use the token: where it is and how to log in, never a key. */
  gatewayEnv(): Record<string, string> {
    return {
      KEY_STORE: 'pkcs11',
      PKCS11_MODULE: SOFTHSM_MODULE,
      PKCS11_TOKEN_LABEL: this.label,
      PKCS11_PIN_FILE: this.pinFile,
      GATEWAY_SIGNING_KEY_LABEL: this.signingKeyLabel,
      SOFTHSM2_CONF: this.configFile,
    };
  }

  /** Runs `body` with `token` (a logged-in Pkcs11Token) and `pkcs11js` in a process of its own; returns what it returns. */
  run<T>(body: string): T {
    const script = `const pkcs11js = require('pkcs11js');
      const { Pkcs11Token } = require(${JSON.stringify(PKCS11_LIBRARY)});
      const token = Pkcs11Token.open({ module: ${JSON.stringify(SOFTHSM_MODULE)}, tokenLabel: ${JSON.stringify(this.label)}, pin: ${JSON.stringify(this.pin)} });
      try { process.stdout.write(JSON.stringify((() => { ${body} })() ?? null)); } finally { token.close(); }`;
    const result = spawnSync(process.execPath, ['-e', script], { env: this.env(), encoding: 'utf8', cwd: projectRoot() });
    if (result.status !== 0) throw new Error(`token script failed: ${result.stderr}`);
    return JSON.parse(result.stdout) as T;
  }

  /** The gateway's signing key and both hash keys, made in the token; returns the signing key's public half (PEM), to be certified. */
  makeGatewayKeys(): string {
    return this.run<string>(`token.generateHmacKey('hash:pan'); token.generateHmacKey('hash:subject');
      return token.generateEcSigningKey(${JSON.stringify(this.signingKeyLabel)}).publicKey.export({ type: 'spki', format: 'pem' });`);
  }

  /**
   * An AES-128 zone master key loaded into the token with a value the caller knows, as custodians enter a
   * zone key from its components: the tests and the bench use it to make cryptograms of banks' MAC keys.
   */
  loadZoneKey(label: string, value: Buffer): void {
    this.run(`token.use((library, session) => library.C_CreateObject(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_LABEL, value: ${JSON.stringify(label)} },
      { type: pkcs11js.CKA_VALUE, value: Buffer.from(${JSON.stringify(value.toString('hex'))}, 'hex') },
      { type: pkcs11js.CKA_UNWRAP, value: true }, { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    ]));`);
  }
}

/**
 * A double-length MAC key's cryptogram under an AES zone key, in the form `mac-key import` takes: each half
 * as Ki‖Ki wrapped with AES key wrap (RFC 3394), one after the other (96 hex digits).
 */
export function aesZoneCryptogram(zoneKey: Buffer, macKey: Buffer): string {
  const wrap = (half: Buffer) => {
    const cipher = createCipheriv(`id-aes${zoneKey.length * 8}-wrap`, zoneKey, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
    return Buffer.concat([cipher.update(Buffer.concat([half, half])), cipher.final()]);
  };
  return Buffer.concat([wrap(macKey.subarray(0, 8)), wrap(macKey.subarray(8, 16))]).toString('hex').toUpperCase();
}
