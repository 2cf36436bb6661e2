import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One field of contracts/iso8583/fields.json: the field formats are data, not code. */
export interface FieldSpec {
  field: number;
  name: string;
  type: 'n' | 'an' | 'ans' | 'b' | 'z';
  length: 'fixed' | 'llvar' | 'lllvar';
  max: number;
  min?: number;
  mask?: 'pan' | 'all' | 'tlv-values';
  /** Message types that carry it in and out. */
  in: string[];
  out: string[];
  note?: string;
}

/** A file of contracts/iso8583/, found from src/ (tests) or dist/ (built). */
export function contractFile(name: string): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'contracts/iso8583', name);
    try {
      readFileSync(candidate);
      return candidate;
    } catch {
      dir = join(dir, '..');
    }
  }
  throw new Error(`contracts/iso8583/${name} not found`);
}

export const FIELD_TABLE: { framing: { maxFrameBytes: number }; fields: FieldSpec[] } = JSON.parse(readFileSync(contractFile('fields.json'), 'utf8'));
export const FIELDS = new Map<number, FieldSpec>(FIELD_TABLE.fields.map((f) => [f.field, f]));
export const MAX_FRAME_BYTES = FIELD_TABLE.framing.maxFrameBytes;

/**
 * The same table in iso_8583's "custom formats" form. Its binary fields
 * count hex digits: its default format for 64 and 128 (MaxLen 8) packs
 * 4 bytes where the spec says 8, so 'b' lengths are doubled here.
 */
export const CODEC_FORMATS: Record<string, { ContentType: string; Label: string; LenType: string; MaxLen: number; MinLen?: number }> = Object.fromEntries(
  FIELD_TABLE.fields.map((f) => [
    String(f.field),
    {
      ContentType: f.type,
      Label: f.name,
      LenType: f.length,
      MaxLen: f.type === 'b' ? f.max * 2 : f.max,
      ...(f.min ? { MinLen: f.min } : {}),
    },
  ]),
);
