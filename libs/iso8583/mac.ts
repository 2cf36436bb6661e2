import { createCipheriv, createDecipheriv, createSecretKey, KeyObject } from 'node:crypto';

/** Per key buffer, its two halves as DES-EDE3 keys, made once: turning raw bytes into a key on every MAC cost more than the MAC. */
const preparedKeys = new WeakMap<Buffer, { k1: KeyObject; k2: KeyObject }>();

function prepared(key: Buffer): { k1: KeyObject; k2: KeyObject } {
  let keys = preparedKeys.get(key);
  if (!keys) {
    if (key.length !== 16) throw new Error('an X9.19 MAC key is 16 bytes (double-length 3DES)');
    const k1 = key.subarray(0, 8);
    const k2 = key.subarray(8, 16);
    keys = { k1: createSecretKey(Buffer.concat([k1, k1, k1])), k2: createSecretKey(Buffer.concat([k2, k2, k2])) };
    preparedKeys.set(key, keys);
  }
  return keys;
}

/**
 * ANSI X9.19 "retail" MAC = ISO/IEC 9797-1 MAC algorithm 3 with padding
 * method 1 (zeros, none if already a multiple of 8; one zero block for an
 * empty message), 8-byte result, double-length key K1||K2:
 * CBC-MAC with single DES under K1, then the last block is decrypted with K2
 * and encrypted again with K1.
 *
 * node:crypto (OpenSSL 3) has single DES only in its legacy provider; DES-EDE3
 * with K||K||K is single DES under K, so that is what is used.
 */
export function retailMac(key: Buffer, data: Buffer): Buffer {
  return macUnder(prepared(key), data);
}

function macUnder({ k1, k2 }: { k1: KeyObject; k2: KeyObject }, data: Buffer): Buffer {
  const padded = Buffer.alloc(Math.max(8, Math.ceil(data.length / 8) * 8));
  data.copy(padded);
  const cbc = createCipheriv('des-ede3-cbc', k1, Buffer.alloc(8));
  cbc.setAutoPadding(false);
  const chained = Buffer.concat([cbc.update(padded), cbc.final()]);
  const last = chained.subarray(chained.length - 8);
  const decrypt = createDecipheriv('des-ede3-ecb', k2, null);
  decrypt.setAutoPadding(false);
  const middle = Buffer.concat([decrypt.update(last), decrypt.final()]);
  const encrypt = createCipheriv('des-ede3-ecb', k1, null);
  encrypt.setAutoPadding(false);
  return Buffer.concat([encrypt.update(middle), encrypt.final()]);
}

/** What signs and checks ISO 8583 MACs: a key in memory (`softwareMacKey`) or one in a PKCS#11 token. */
export interface MacKey {
  /** The X9.19 MAC of `data`, 8 bytes. */
  mac(data: Buffer): Buffer;
}

/** A double-length key held in memory (KEY_STORE=software, the simulators). */
export function softwareMacKey(key: Buffer): MacKey {
  const keys = prepared(key);
  return { mac: (data) => macUnder(keys, data) };
}

/**
 * The key check value banks and HSMs compare for a double-length 3DES key:
 * a zero block encrypted under it (K1, K2, K1), first 3 bytes in hex. It
 * identifies a key without revealing it.
 */
export function keyCheckValue(doubleLengthKey: Buffer): string {
  if (doubleLengthKey.length !== 16) throw new Error('a double-length 3DES key is 16 bytes');
  const cipher = createCipheriv('des-ede3-ecb', Buffer.concat([doubleLengthKey, doubleLengthKey.subarray(0, 8)]), null);
  cipher.setAutoPadding(false);
  return Buffer.concat([cipher.update(Buffer.alloc(8)), cipher.final()]).subarray(0, 3).toString('hex').toUpperCase();
}
