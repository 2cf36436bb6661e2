import { createCipheriv, createDecipheriv } from 'node:crypto';

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
  if (key.length !== 16) throw new Error('an X9.19 MAC key is 16 bytes (double-length 3DES)');
  const k1 = Buffer.concat([key.subarray(0, 8), key.subarray(0, 8), key.subarray(0, 8)]);
  const k2 = Buffer.concat([key.subarray(8, 16), key.subarray(8, 16), key.subarray(8, 16)]);
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
