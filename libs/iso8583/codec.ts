// iso_8583 ships no types.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Iso8583 = require('iso_8583') as new (data?: Record<string, string>, formats?: object, requiredFieldsFile?: string) => {
  validateMessage(): true | { error: string };
  getRawMessage(): Buffer | { error: string };
  getIsoJSON(buffer: Buffer, formats: object): Record<string, string> & { error?: string };
};
import { CODEC_FORMATS, contractFile, FIELDS, FieldSpec } from './field-formats';
import { MESSAGE_TABLE } from './message-definitions';

/**
 * iso_8583 otherwise checks its own sample table of required fields (it wants
 * field 4, an amount, for processing code 000000) and edits that table in
 * place as it checks. Required fields are the spec's business: the ATM
 * channel checks them itself, so the library gets an empty table
 * (contracts/iso8583/codec-required-fields.json).
 */
const NO_LIBRARY_REQUIRED_FIELDS = contractFile('codec-required-fields.json');

/** A message as field number -> value; 0 is the MTI; binary fields (64, 128) as hex. */
export type IsoFields = Record<number, string>;

export class IsoFormatError extends Error {}

const MTI = /^[0-9]{4}$/;

/** Packs a message (MTI, binary bitmap, fields) without the 2-byte length. */
export function packMessage(fields: IsoFields): Buffer {
  for (const key of Object.keys(fields)) {
    const field = Number(key);
    if (field !== 0 && !FIELDS.has(field)) throw new IsoFormatError(`field ${field} is not in contracts/iso8583/fields.json`);
  }
  const message = new Iso8583(Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v])), CODEC_FORMATS, NO_LIBRARY_REQUIRED_FIELDS);
  const valid = message.validateMessage();
  if (valid !== true) throw new IsoFormatError(valid.error);
  const raw = message.getRawMessage();
  if (!Buffer.isBuffer(raw)) throw new IsoFormatError(raw.error);
  // iso_8583 always writes a secondary bitmap; the spec has one only when a field 65-128 is present.
  const hasSecondaryFields = Object.keys(fields).some((key) => Number(key) > 64);
  if (!hasSecondaryFields && raw[4] & 0x80) {
    return Buffer.concat([raw.subarray(0, 4), Buffer.from([raw[4] & 0x7f]), raw.subarray(5, 12), raw.subarray(20)]);
  }
  return raw;
}

/** Unpacks one message (without its length prefix). Throws IsoFormatError saying what is wrong. */
export function unpackMessage(raw: Buffer): IsoFields {
  if (raw.length < 12) throw new IsoFormatError('message shorter than an MTI and a bitmap');
  const mti = raw.subarray(0, 4).toString('latin1');
  if (!MTI.test(mti)) throw new IsoFormatError('MTI is not four digits');
  const framed = Buffer.alloc(raw.length + 2);
  framed.writeUInt16BE(raw.length, 0);
  raw.copy(framed, 2);
  let parsed: Record<string, string> & { error?: string };
  try {
    parsed = new Iso8583({}, CODEC_FORMATS, NO_LIBRARY_REQUIRED_FIELDS).getIsoJSON(framed, CODEC_FORMATS);
  } catch (error) {
    throw new IsoFormatError(`cannot unpack: ${(error as Error).message}`);
  }
  if (!parsed || typeof parsed !== 'object' || parsed.error) throw new IsoFormatError(`cannot unpack: ${parsed?.error ?? 'no result'}`);
  const fields: IsoFields = {};
  for (const [key, value] of Object.entries(parsed)) {
    const field = Number(key);
    if (!Number.isInteger(field)) continue;
    if (field !== 0 && !FIELDS.has(field)) throw new IsoFormatError(`field ${field} is not supported`);
    fields[field] = String(value);
  }
  // The codec is lenient; re-packing proves every field has the declared format and nothing was left over.
  let repacked: Buffer;
  try {
    repacked = packMessage(fields);
  } catch (error) {
    throw new IsoFormatError(`invalid field: ${(error as Error).message}`);
  }
  if (!repacked.equals(raw)) throw new IsoFormatError('message has trailing or malformed bytes');
  return fields;
}

/** What can be read of a message that does not unpack. */
export interface MessageHead {
  mti: string;
  stan: string | null;
  acquirerId: string | null;
  rrn: string | null;
}

/** A field value as the contract's format allows it; what a peek cannot vouch for is left out. */
function wellFormed(spec: FieldSpec, value: string): boolean {
  if (value.length === 0) return false;
  if (spec.type === 'n') return /^[0-9]+$/.test(value);
  if (spec.type === 'an' || spec.type === 'ans') return /^[\x20-\x7e]+$/.test(value);
  return false;
}

/**
 * Reads the MTI and the `wanted` fields of a message as far as the fields
 * before them can be walked with the contract's formats; values that do not
 * have their field's format are left out. Null when not even the MTI reads.
 */
export function peekFields(raw: Buffer, wanted: readonly number[]): { mti: string; fields: IsoFields } | null {
  if (raw.length < 12) return null;
  const mti = raw.subarray(0, 4).toString('latin1');
  if (!MTI.test(mti)) return null;
  const fields: IsoFields = {};
  const bitmap = raw.subarray(4, raw[4] & 0x80 ? 20 : 12);
  const has = (field: number) => (bitmap[(field - 1) >> 3] & (0x80 >> ((field - 1) & 7))) !== 0;
  const last = Math.max(0, ...wanted);
  let offset = 4 + bitmap.length;
  for (let field = 2; field <= last; field++) {
    if (!has(field)) continue;
    const spec = FIELDS.get(field);
    if (!spec) break;
    let length = spec.max;
    if (spec.length !== 'fixed') {
      const digits = spec.length === 'llvar' ? 2 : 3;
      const text = raw.subarray(offset, offset + digits).toString('latin1');
      if (!/^[0-9]+$/.test(text) || Number(text) > spec.max) break;
      length = Number(text);
      offset += digits;
    }
    if (offset + length > raw.length) break;
    const value = raw.subarray(offset, offset + length).toString('latin1');
    if (wanted.includes(field) && wellFormed(spec, value)) fields[field] = value;
    offset += length;
  }
  return { mti, fields };
}

/**
 * The MTI, STAN, acquirer and RRN of a message that does not unpack: the
 * fields contracts/iso8583/messages.json has an answer to such a frame echo,
 * so the switch can match it (fields 11 and 37).
 */
export function peekMessageHead(raw: Buffer): MessageHead | null {
  const peeked = peekFields(raw, MESSAGE_TABLE.unreadable.echoes);
  if (!peeked) return null;
  const { mti, fields } = peeked;
  return { mti, stan: fields[11] ?? null, acquirerId: fields[32] ?? null, rrn: fields[37] ?? null };
}
