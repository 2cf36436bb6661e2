// iso_8583 ships no types; the gateway uses it to decode only.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Iso8583 = require('iso_8583') as new (data?: Record<string, string>, formats?: object, requiredFieldsFile?: string) => {
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

/** getIsoJSON reads only its arguments: one instance decodes every message. */
const DECODER = new Iso8583({}, CODEC_FORMATS, NO_LIBRARY_REQUIRED_FIELDS);

/** A message as field number -> value; 0 is the MTI; binary fields (64, 128) as hex. */
export type IsoFields = Record<number, string>;

export class IsoFormatError extends Error {}

const MTI = /^[0-9]{4}$/;

/**
 * Every byte each type may hold. iso_8583 tests its types one character at a
 * time against these sets (an unanchored regular expression per character);
 * the same sets, anchored, test a whole value at once. 'z' (track 2) is any
 * ASCII: the library would take any character, and write a non-ASCII one
 * as more bytes than its length prefix counts.
 */
const VALUE_PATTERNS: Record<FieldSpec['type'], RegExp> = {
  n: /^[0-9]+$/,
  an: /^[0-9A-Za-z]+$/,
  ans: /^[-0-9A-Za-z!$%^&*()_+|~=`{}[\]:";'<>?,./ ]+$/,
  b: /^[0-9A-Fa-f]+$/,
  z: /^[\x00-\x7f]+$/,
};

/** A field of fields.json, compiled once: how to check a value and how many bytes it packs to. */
interface CompiledField {
  readonly field: number;
  readonly pattern: RegExp;
  /** 0 for a fixed length, else the digits of its length prefix (LLVAR 2, LLLVAR 3). */
  readonly prefixDigits: number;
  readonly binary: boolean;
  /** Characters (hex digits for binary fields) the value has (fixed) or may have at most. */
  readonly maxChars: number;
}

const COMPILED = new Map<number, CompiledField>(
  [...FIELDS.values()].map((spec) => [
    spec.field,
    {
      field: spec.field,
      pattern: VALUE_PATTERNS[spec.type],
      prefixDigits: spec.length === 'fixed' ? 0 : spec.length === 'llvar' ? 2 : 3,
      binary: spec.type === 'b',
      maxChars: spec.type === 'b' ? spec.max * 2 : spec.max,
    },
  ]),
);

/** Why a value cannot be packed as its field, or null when it can. */
function valueProblem(compiled: CompiledField, value: string): string | null {
  if (typeof value !== 'string' || !compiled.pattern.test(value)) return `field ${compiled.field}: provided data is not of its type`;
  const fits = compiled.prefixDigits === 0 ? value.length === compiled.maxChars : value.length <= compiled.maxChars;
  if (!fits || (compiled.binary && value.length % 2 !== 0)) return `invalid length of data on field ${compiled.field}`;
  return null;
}

/**
 * Packs a message (MTI, binary bitmap, fields) without the 2-byte length,
 * with the formats of contracts/iso8583/fields.json compiled once: one
 * buffer, each value checked by one expression. The bytes are iso_8583's
 * (a property test holds the two to the same output and the same refusals),
 * without its per-call cost: it validates every field twice, a character at
 * a time, and concatenates a buffer per field. A secondary bitmap only when
 * a field 65-128 is present.
 */
export function packMessage(fields: IsoFields): Buffer {
  const mti = fields[0];
  if (typeof mti !== 'string' || !MTI.test(mti)) throw new IsoFormatError('MTI is not four digits');
  const present: CompiledField[] = [];
  let length = 12;
  for (const key of Object.keys(fields)) {
    const field = Number(key);
    if (field === 0) continue;
    const compiled = COMPILED.get(field);
    if (!compiled) throw new IsoFormatError(`field ${field} is not in contracts/iso8583/fields.json`);
    const problem = valueProblem(compiled, fields[field]);
    if (problem) throw new IsoFormatError(problem);
    present.push(compiled);
    length += compiled.prefixDigits + (compiled.binary ? fields[field].length / 2 : fields[field].length);
  }
  // Object.keys lists integer keys in ascending order, which is the order fields are packed in.
  const secondary = present.length > 0 && present[present.length - 1].field > 64;
  if (secondary) length += 8;
  const raw = Buffer.allocUnsafe(length);
  raw.write(mti, 0, 'latin1');
  const bitmapBytes = secondary ? 16 : 8;
  raw.fill(0, 4, 4 + bitmapBytes);
  if (secondary) raw[4] = 0x80;
  let offset = 4 + bitmapBytes;
  for (const compiled of present) {
    const value = fields[compiled.field];
    raw[4 + ((compiled.field - 1) >> 3)] |= 0x80 >> ((compiled.field - 1) & 7);
    if (compiled.prefixDigits > 0) {
      const chars = compiled.binary ? value.length / 2 : value.length;
      offset += raw.write(String(chars).padStart(compiled.prefixDigits, '0'), offset, 'latin1');
    }
    offset += raw.write(value, offset, compiled.binary ? 'hex' : 'latin1');
  }
  return raw;
}

/**
 * Unpacks one message (without its length prefix). Throws IsoFormatError
 * saying what is wrong. iso_8583 decodes; it is lenient, so the fields are
 * then packed again: equal bytes prove that every field has its declared
 * format, that the bitmap is the one its fields call for, and that nothing
 * was left over.
 */
export function unpackMessage(raw: Buffer): IsoFields {
  if (raw.length < 12) throw new IsoFormatError('message shorter than an MTI and a bitmap');
  const mti = raw.subarray(0, 4).toString('latin1');
  if (!MTI.test(mti)) throw new IsoFormatError('MTI is not four digits');
  const framed = Buffer.allocUnsafe(raw.length + 2);
  framed.writeUInt16BE(raw.length, 0);
  raw.copy(framed, 2);
  let parsed: Record<string, string> & { error?: string };
  try {
    parsed = DECODER.getIsoJSON(framed, CODEC_FORMATS);
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
