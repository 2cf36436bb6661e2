import fc from 'fast-check';
import * as forge from 'node-forge';
import { FrameDecoder, FrameTooLargeError, frame } from './framing';
import { IsoFormatError, packMessage, peekMessageHead, unpackMessage } from './codec';
import { CODEC_FORMATS, contractFile, FIELDS, FieldSpec } from './field-formats';
import { keyCheckValue, retailMac } from './mac';
import { maskForLog } from './masking';
import { buildTlv, parseTlv, TlvError } from './tlv';
import { SAMPLE_0200 } from '../../test/support/atm-requests';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Iso8583 = require('iso_8583');

const activation = { ...SAMPLE_0200, 64: '0123456789abcdef' };

describe('codec (iso_8583 with the formats of contracts/iso8583/fields.json)', () => {
  it('packs MTI, binary primary bitmap and ASCII fields, and unpacks to the same fields', () => {
    const raw = packMessage(activation);
    expect(raw.subarray(0, 4).toString()).toBe('0200');
    // Bitmap bits 2, 3, 7, 11, 12, 13, 32, 37, 41, 48, 64 and no secondary bitmap.
    expect(raw.subarray(4, 12).toString('hex')).toBe('6238000108810001');
    expect(unpackMessage(raw)).toEqual(activation);
  });

  it('no secondary bitmap without a field above 64 (the library always writes one; we drop it)', () => {
    const raw = packMessage(activation);
    expect(raw[4] & 0x80).toBe(0);
    expect(new Iso8583(activation, { 64: { ContentType: 'b', Label: 'MAC', LenType: 'fixed', MaxLen: 16 } }).getRawMessage()[4] & 0x80).toBe(0x80);
  });

  it('packs processing code 000000 without an amount (the library’s own required-fields table would demand field 4)', () => {
    expect(() => packMessage({ ...activation, 3: '000000' })).not.toThrow();
    const { 64: _mac, ...withoutMac } = activation;
    expect(new Iso8583({ ...withoutMac, 3: '000000' }).validateMessage()).not.toBe(true);
  });

  it('field 64 is 8 raw bytes (the library default packs 4; our format fixes that)', () => {
    const raw = packMessage(activation);
    expect(raw.subarray(raw.length - 8).toString('hex')).toBe('0123456789abcdef');
    const libraryDefault = new Iso8583(activation).validateMessage();
    expect(libraryDefault).toEqual({ error: 'invalid length of data on field 64' });
  });

  it('a field over 64 gets a secondary bitmap, and the MAC goes in 128', () => {
    const reversal = { 0: '0420', 2: '4111111111111111', 3: '910000', 7: '1123100500', 11: '000124', 32: '111111', 37: '123456789012', 41: 'TERM0001', 90: '020000012311231000000000111111100000000000', 128: 'fedcba9876543210' };
    const raw = packMessage(reversal);
    expect(raw[4] & 0x80).toBe(0x80);
    expect(raw.subarray(raw.length - 8).toString('hex')).toBe('fedcba9876543210');
    expect(unpackMessage(raw)).toEqual(reversal);
  });

  it.each([
    ['a PAN with letters', { ...activation, 2: '41111111111x1111' }],
    ['a STAN of 5 digits', { ...activation, 11: '00123' }],
    ['a terminal id of 9 characters', { ...activation, 41: 'TERM00012' }],
    ['a field the contract does not know', { ...activation, 4: '000000000100' }],
  ])('refuses to pack %s', (_name, fields) => {
    expect(() => packMessage(fields)).toThrow(IsoFormatError);
  });

  it('refuses bytes that do not unpack cleanly, saying why', () => {
    const raw = packMessage(activation);
    expect(() => unpackMessage(raw.subarray(0, raw.length - 3))).toThrow(IsoFormatError);
    expect(() => unpackMessage(Buffer.concat([raw, Buffer.from('xx')]))).toThrow(IsoFormatError);
    expect(() => unpackMessage(Buffer.from('02x0abcdefgh1234'))).toThrow(/MTI/);
  });

  it('can read the MTI, STAN, acquirer and RRN of a message whose later fields are broken', () => {
    const raw = packMessage(activation);
    const broken = Buffer.from(raw);
    broken.write('XX', raw.indexOf('NI010'));
    expect(peekMessageHead(broken)).toEqual({ mti: '0200', stan: '000123', acquirerId: '111111', rrn: '123456789012' });
    expect(peekMessageHead(Buffer.from('garbage'))).toBeNull();
  });
});

describe('the compiled packer against iso_8583 (the library as the oracle)', () => {
  const NO_REQUIRED_FIELDS = contractFile('codec-required-fields.json');
  /** What iso_8583 packs for these fields, secondary bitmap dropped as the spec wants, or null when it refuses. */
  function libraryPack(fields: Record<number, string>): Buffer | null {
    const message = new Iso8583({ ...fields }, CODEC_FORMATS, NO_REQUIRED_FIELDS);
    if (message.validateMessage() !== true) return null;
    const raw = message.getRawMessage();
    if (!Buffer.isBuffer(raw)) return null;
    if (Object.keys(fields).some((key) => Number(key) > 64) || !(raw[4] & 0x80)) return raw;
    return Buffer.concat([raw.subarray(0, 4), Buffer.from([raw[4] & 0x7f]), raw.subarray(5, 12), raw.subarray(20)]);
  }
  const CHARS: Record<FieldSpec['type'], string> = {
    n: '0123456789',
    an: '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ',
    ans: "0123456789aZ -!$%^&*()_+|~=`{}[]:\";'<>?,./",
    b: '0123456789abcdefABCDEF',
    z: '0123456789=D?;',
  };
  /** A value for `spec`: mostly valid, sometimes a character outside its type or a length it does not allow. */
  function value(spec: FieldSpec): fc.Arbitrary<string> {
    const chars = spec.type === 'b' ? spec.max * 2 : spec.max;
    const length = spec.length === 'fixed' ? fc.constant(chars) : fc.integer({ min: 1, max: chars });
    const valid = length.chain((n) => fc.string({ unit: fc.constantFrom(...CHARS[spec.type]), minLength: n, maxLength: n }));
    const wrongChar = valid.chain((v) => fc.tuple(fc.nat(v.length - 1), fc.constantFrom('@', '#', '\\', 'é', 'x', '~')).map(([at, c]) => v.slice(0, at) + c + v.slice(at + 1)));
    const wrongLength = fc.string({ unit: fc.constantFrom(...CHARS[spec.type]), minLength: 0, maxLength: chars + 3 });
    return fc.oneof({ arbitrary: valid, weight: 16 }, { arbitrary: wrongChar, weight: 1 }, { arbitrary: wrongLength, weight: 1 });
  }
  const messages = fc
    .tuple(fc.constantFrom('0200', '0210', '0420', '0430', '0800', '0810'), fc.subarray([...FIELDS.values()], { minLength: 1 }))
    .chain(([mti, specs]) => fc.tuple(fc.constant(mti), ...specs.map((spec) => value(spec).map((v) => [spec.field, v] as const))))
    .map(([mti, ...entries]) => ({ 0: mti, ...Object.fromEntries(entries) }) as Record<number, string>);

  it('packs the same bytes as iso_8583 for every message it accepts, and refuses every message it refuses (property)', () => {
    fc.assert(
      fc.property(messages, (fields) => {
        // The one difference, on purpose: iso_8583 takes non-ASCII track 2 data and writes more bytes than its prefix counts.
        const nonAsciiTrack2 = Object.entries(fields).some(([key, v]) => FIELDS.get(Number(key))?.type === 'z' && /[^\x00-\x7f]/.test(v));
        const expected = nonAsciiTrack2 ? null : libraryPack(fields);
        if (expected === null) expect(() => packMessage(fields)).toThrow(IsoFormatError);
        else {
          expect(packMessage(fields).equals(expected)).toBe(true);
          // Binary fields come back as lower-case hex.
          const binary = (field: number) => FIELDS.get(field)?.type === 'b';
          expect(unpackMessage(expected)).toEqual(Object.fromEntries(Object.entries(fields).map(([key, v]) => [key, binary(Number(key)) ? v.toLowerCase() : v])));
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('framing', () => {
  const one = frame(packMessage(activation));

  it('reassembles a frame written byte by byte', () => {
    const decoder = new FrameDecoder(4096);
    const frames: Buffer[] = [];
    for (const byte of one) frames.push(...decoder.push(Buffer.from([byte])));
    expect(frames).toHaveLength(1);
    expect(unpackMessage(frames[0])).toEqual(activation);
  });

  it('splits ten frames out of one chunk', () => {
    const decoder = new FrameDecoder(4096);
    expect(decoder.push(Buffer.concat(Array(10).fill(one)))).toHaveLength(10);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('refuses a length over the maximum, and a zero length', () => {
    expect(() => new FrameDecoder(4096).push(Buffer.from([0x10, 0x01]))).toThrow(FrameTooLargeError);
    expect(() => new FrameDecoder(4096).push(Buffer.from([0, 0]))).toThrow(FrameTooLargeError);
  });

  it('any split of any sequence of frames gives the same frames (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(50), { maxLength: 20 }), (payloads, cuts) => {
        const stream = Buffer.concat(payloads.map((p) => frame(Buffer.from(p))));
        const decoder = new FrameDecoder(4096);
        const out: Buffer[] = [];
        let offset = 0;
        for (const cut of cuts) {
          out.push(...decoder.push(stream.subarray(offset, Math.min(stream.length, offset + cut))));
          offset = Math.min(stream.length, offset + cut);
        }
        out.push(...decoder.push(stream.subarray(offset)));
        expect(out.map((b) => b.toString('hex'))).toEqual(payloads.map((p) => Buffer.from(p).toString('hex')));
      }),
      { seed: 8583, numRuns: 300 },
    );
  });
});

describe('X9.19 MAC', () => {
  /** The definition, step by step, on node-forge's own pure-JavaScript DES: an independent implementation. */
  function forgeDes(key: Buffer, block: Buffer, decrypt = false): Buffer {
    const cipher = decrypt
      ? forge.cipher.createDecipher('DES-ECB', forge.util.createBuffer(key.toString('binary')))
      : forge.cipher.createCipher('DES-ECB', forge.util.createBuffer(key.toString('binary')));
    const mode = cipher.mode as unknown as { pad: unknown; unpad: unknown };
    mode.pad = false;
    mode.unpad = false;
    cipher.start();
    cipher.update(forge.util.createBuffer(block.toString('binary')));
    cipher.finish();
    return Buffer.from(cipher.output.getBytes(), 'binary');
  }
  function referenceMac(key: Buffer, data: Buffer): Buffer {
    const k1 = key.subarray(0, 8);
    const k2 = key.subarray(8, 16);
    const padded = Buffer.alloc(Math.max(8, Math.ceil(data.length / 8) * 8));
    data.copy(padded);
    let chain: Buffer = Buffer.alloc(8);
    for (let i = 0; i < padded.length; i += 8) {
      const block = Buffer.alloc(8);
      for (let j = 0; j < 8; j++) block[j] = chain[j] ^ padded[i + j];
      chain = forgeDes(k1, block);
    }
    return forgeDes(k1, forgeDes(k2, chain, true));
  }

  it('matches a vector derived from FIPS 81’s published DES-CBC example', () => {
    // FIPS 81 (appendix C): key 0123456789abcdef, IV 1234567890abcdef, "Now is the time for all "
    // encrypts in CBC to e5c7cdde872bf27c 43e934008c389c0f 683788499a7c05f6. A CBC-MAC with a zero IV
    // over (P1 xor IV) || P2 || P3 therefore ends in 683788499a7c05f6; with K1 = K2 the final
    // decrypt-with-K2 / encrypt-with-K1 cancels out, so the X9.19 MAC is that last block.
    const key = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
    const text = Buffer.from('Now is the time for all ');
    const iv = Buffer.from('1234567890abcdef', 'hex');
    for (let i = 0; i < 8; i++) text[i] ^= iv[i];
    expect(retailMac(key, text).toString('hex')).toBe('683788499a7c05f6');
  });

  it('equals the step-by-step definition on independent DES for random keys and messages', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 0, maxLength: 200 }), (key, data) => {
        expect(retailMac(Buffer.from(key), Buffer.from(data)).toString('hex')).toBe(referenceMac(Buffer.from(key), Buffer.from(data)).toString('hex'));
      }),
      { seed: 919, numRuns: 200 },
    );
  });

  it('padding method 1: trailing zero bytes up to the block do not change the MAC; one more byte does', () => {
    const key = Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex');
    expect(retailMac(key, Buffer.from('12345'))).toEqual(retailMac(key, Buffer.from('12345\0\0\0')));
    expect(retailMac(key, Buffer.from('12345'))).not.toEqual(retailMac(key, Buffer.from('123456')));
  });
});

describe('field 48 TLV', () => {
  it('parses the spec example and builds it back', () => {
    const values = parseTlv('NI0101000000008MN0100512345678');
    expect([...values]).toEqual([['NI', '1000000008'], ['MN', '0512345678']]);
    expect(buildTlv([...values])).toBe('NI0101000000008MN0100512345678');
  });

  it.each([
    ['a truncated value', 'NI0101000000'],
    ['a non-numeric length', 'NI01x1000000008'],
    ['a header cut short', 'NI0101000000008MN'],
    ['a repeated tag', 'NI0011NI0012'],
    ['a lower-case tag', 'ni0011'],
  ])('refuses %s', (_name, text) => {
    expect(() => parseTlv(text)).toThrow(TlvError);
  });
});

describe('masking for logs', () => {
  it('masks the PAN, track and PIN data, and the values of field 48', () => {
    const masked = maskForLog({ ...activation, 35: '4111111111111111D2512', 52: '0123456789abcdef' });
    expect(masked[2]).toBe('411111******1111');
    expect(masked[35]).toBe('[21 hidden]');
    expect(masked[52]).toBe('[16 hidden]');
    expect(masked[48]).toBe('NI010**********MN010**********');
    expect(masked[11]).toBe('000123');
    expect(JSON.stringify(masked)).not.toMatch(/1000000008|0512345678|4111111111111111/);
  });
});

describe('decoder fuzzing (fast-check, fixed seed)', () => {
  const valid = packMessage(activation);
  const mutated = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
    fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 })).map(([at, xor]) => {
      const copy = Buffer.from(valid);
      copy[at] ^= xor;
      return copy;
    }),
    fc.nat(valid.length).map((length) => valid.subarray(0, length)),
    fc.tuple(fc.nat(valid.length), fc.uint8Array({ maxLength: 20 })).map(([at, bytes]) => Buffer.concat([valid.subarray(0, at), Buffer.from(bytes), valid.subarray(at)])),
  );

  it('unpackMessage either returns fields that re-pack to the same bytes or throws IsoFormatError; peek never throws', () => {
    fc.assert(
      fc.property(mutated, (raw) => {
        try {
          const fields = unpackMessage(raw);
          expect(packMessage(fields).equals(raw)).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(IsoFormatError);
        }
        expect(() => peekMessageHead(raw)).not.toThrow();
      }),
      { seed: 20261123, numRuns: 5000 },
    );
  });
});

describe('key check value', () => {
  it('is the first 3 bytes of a zero block under the key: 08D7B4 for the published test key 0123456789ABCDEF FEDCBA9876543210', () => {
    const key = Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex');
    expect(keyCheckValue(key)).toBe('08D7B4');
    // The same from node-forge's own 3DES (K1, K2, K1), an implementation independent of node:crypto.
    const cipher = forge.cipher.createCipher('3DES-ECB', forge.util.createBuffer(Buffer.concat([key, key.subarray(0, 8)]).toString('binary')));
    (cipher.mode as unknown as { pad: () => boolean }).pad = () => true; // no padding: one whole block
    cipher.start();
    cipher.update(forge.util.createBuffer('\0'.repeat(8)));
    cipher.finish();
    expect(forge.util.bytesToHex(cipher.output.getBytes()).slice(0, 6).toUpperCase()).toBe('08D7B4');
    expect(() => keyCheckValue(Buffer.alloc(8))).toThrow(/16 bytes/);
  });
});
