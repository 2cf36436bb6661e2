import { timingSafeEqual } from 'node:crypto';
import { IsoFields, packMessage } from './codec';
import { MacKey } from './mac';

/**
 * MAC placement of spec 4.3, for both ends of the link: the MAC is field 64,
 * or 128 when a secondary bitmap is present; it is the last field, and is
 * computed (X9.19) over every byte from the MTI up to it, with its bit set.
 */
const MAC_BYTES = 8;

/** The MAC field a message with these fields packs to: 128 when any field 65-128 makes a secondary bitmap. */
export function macFieldFor(fields: IsoFields): 64 | 128 {
  return Object.keys(fields).some((key) => Number(key) > 64) ? 128 : 64;
}

/** The MAC field of packed bytes, by their bitmap. */
export function macFieldOf(raw: Buffer): 64 | 128 {
  return raw[4] & 0x80 ? 128 : 64;
}

/** The bytes a MAC covers, of a message that ends with its MAC. */
function macInput(raw: Buffer): Buffer {
  return raw.subarray(0, raw.length - MAC_BYTES);
}

/** The MAC of a packed message, in place: writing to it changes the message. */
export function macOf(raw: Buffer): Buffer {
  return raw.subarray(raw.length - MAC_BYTES);
}

/**
 * Packs `fields` with their MAC under `key`. With no key the MAC field is
 * there, all zeros: the message has the shape of a signed one and verifies
 * under no key.
 */
export function packSigned(fields: IsoFields, key: MacKey | null): Buffer {
  const raw = packMessage({ ...fields, [macFieldFor(fields)]: '0'.repeat(MAC_BYTES * 2) });
  if (key) key.mac(macInput(raw)).copy(macOf(raw));
  return raw;
}

export type MacVerdict = 'valid' | 'invalid' | 'missing' | 'no-key';

/** Whether `raw` (unpacked as `fields`) carries a MAC that verifies under `key`; 'missing' is judged before 'no-key'. */
export function verifyMac(raw: Buffer, fields: IsoFields, key: MacKey | null): MacVerdict {
  const received = fields[macFieldOf(raw)];
  if (received === undefined) return 'missing';
  if (!key) return 'no-key';
  const expected = key.mac(macInput(raw));
  const given = Buffer.from(received, 'hex');
  return given.length === expected.length && timingSafeEqual(expected, given) ? 'valid' : 'invalid';
}
