import { randomBytes } from 'node:crypto';
import { openSecret, sealSecret, SecretBoxError } from './secret-box';

const kek = randomBytes(32);
const macKey = Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex');

describe('sealed secrets (MAC keys at rest)', () => {
  it('opens what it sealed, and the sealed form does not contain the secret', () => {
    const sealed = sealSecret(kek, macKey, 'RJHI');
    expect(sealed).toMatch(/^v1:[A-Za-z0-9+/=]+$/);
    expect(Buffer.from(sealed.slice(3), 'base64').includes(macKey)).toBe(false);
    expect(sealed.toLowerCase()).not.toContain(macKey.toString('hex').toLowerCase());
    expect(openSecret(kek, sealed, 'RJHI').equals(macKey)).toBe(true);
  });

  it('seals the same secret differently each time (fresh IV)', () => {
    expect(sealSecret(kek, macKey, 'RJHI')).not.toBe(sealSecret(kek, macKey, 'RJHI'));
  });

  it('refuses another key-encryption key, another bank, and any altered byte', () => {
    const sealed = sealSecret(kek, macKey, 'RJHI');
    expect(() => openSecret(randomBytes(32), sealed, 'RJHI')).toThrow(SecretBoxError);
    expect(() => openSecret(kek, sealed, 'NCBK')).toThrow(/belongs to something else/);
    const bytes = Buffer.from(sealed.slice(3), 'base64');
    bytes[bytes.length - 1] ^= 1;
    expect(() => openSecret(kek, `v1:${bytes.toString('base64')}`, 'RJHI')).toThrow(SecretBoxError);
    expect(() => openSecret(kek, 'v0:abc', 'RJHI')).toThrow(/version v1/);
    expect(() => sealSecret(Buffer.alloc(16), macKey, 'RJHI')).toThrow(/32 bytes/);
  });
});
