import { generateKeyPairSync, sign, verify } from 'node:crypto';
import fc from 'fast-check';
import { derToP1363, p1363ToDer } from './ecdsa-signature';

describe('ECDSA signature forms (r||s and DER)', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

  it("converts exactly as node:crypto's dsaEncoding does, both ways, on real P-256 signatures", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (message) => {
        const der = sign('sha256', message, privateKey);
        const raw = derToP1363(der, 32);
        expect(verify('sha256', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, raw)).toBe(true);
        expect(p1363ToDer(raw, 32)!.equals(der)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips any r||s, including leading zero bytes and set high bits', () => {
    const halves = fc.oneof(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.constantFrom(new Uint8Array(32), new Uint8Array(32).fill(0xff), Uint8Array.from({ length: 32 }, (_, i) => (i < 31 ? 0 : 0x80))),
    );
    fc.assert(
      fc.property(halves, halves, (r, s) => {
        const raw = Buffer.concat([r, s]);
        const der = p1363ToDer(raw, 32)!;
        // Strict DER: one length byte, each INTEGER minimal and non-negative.
        expect(der[0]).toBe(0x30);
        expect(der[1]).toBe(der.length - 2);
        expect(derToP1363(der, 32).equals(raw)).toBe(true);
      }),
    );
  });

  it('a signature of the wrong length is refused before any cryptography; a malformed DER throws', () => {
    expect(p1363ToDer(new Uint8Array(63), 32)).toBeNull();
    expect(p1363ToDer(new Uint8Array(65), 32)).toBeNull();
    expect(() => derToP1363(Buffer.from('3006020101020101ff', 'hex'), 32)).toThrow('not a DER ECDSA signature');
    expect(() => derToP1363(Buffer.from('3103020101', 'hex'), 32)).toThrow('not a DER ECDSA signature');
    expect(() => derToP1363(Buffer.concat([Buffer.from('3025022101', 'hex'), Buffer.alloc(32, 1), Buffer.from('020101', 'hex')]), 32)).toThrow('not a DER ECDSA signature');
  });
});
