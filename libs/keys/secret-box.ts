import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Secrets at rest (MAC keys) under a key-encryption key: AES-256-GCM with a
 * fresh 96-bit IV per secret. The additional data binds a ciphertext to what
 * it belongs to (a bank code), so a stored key cannot be moved to another
 * bank. Stored as `v1:` + base64(iv | tag | ciphertext).
 */
const VERSION = 'v1';

export class SecretBoxError extends Error {}

export function sealSecret(kek: Buffer, plaintext: Buffer, boundTo: string): string {
  checkKek(kek);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, iv);
  cipher.setAAD(Buffer.from(boundTo, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64')}`;
}

export function openSecret(kek: Buffer, sealed: string, boundTo: string): Buffer {
  checkKek(kek);
  const [version, body] = sealed.split(':', 2);
  if (version !== VERSION || !body) throw new SecretBoxError(`not a sealed secret of version ${VERSION}`);
  const bytes = Buffer.from(body, 'base64');
  if (bytes.length < 12 + 16) throw new SecretBoxError('sealed secret is truncated');
  const decipher = createDecipheriv('aes-256-gcm', kek, bytes.subarray(0, 12));
  decipher.setAAD(Buffer.from(boundTo, 'utf8'));
  decipher.setAuthTag(bytes.subarray(12, 28));
  try {
    return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]);
  } catch {
    throw new SecretBoxError(`cannot open the secret of ${boundTo}: wrong key-encryption key, or the stored value was altered or belongs to something else`);
  }
}

function checkKek(kek: Buffer): void {
  if (kek.length !== 32) throw new SecretBoxError('the key-encryption key must be 32 bytes');
}
