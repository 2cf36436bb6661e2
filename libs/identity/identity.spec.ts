import fc from 'fast-check';
import { checkNationalId, luhnValid, normalizeMobile, redactPersonalData } from './index';

/** Appends the Luhn check digit to 9 digits. */
function withCheckDigit(nine: string): string {
  for (let d = 0; d <= 9; d++) if (luhnValid(nine + d)) return nine + d;
  throw new Error('unreachable');
}

describe('national ID', () => {
  it('accepts the spec example and known-good IDs', () => {
    expect(checkNationalId('1000000008')).toEqual({ valid: true, nationalId: '1000000008', kind: 'CITIZEN' });
    expect(checkNationalId(withCheckDigit('200000000'))).toMatchObject({ valid: true, kind: 'RESIDENT' });
  });

  it.each([
    ['1000000007', 'fails the Luhn check digit'],
    ['3000000006', 'must start with 1 (citizen) or 2 (resident)'],
    ['100000000', 'must be exactly 10 digits'],
    ['10000000088', 'must be exactly 10 digits'],
    ['10000000a8', 'must be exactly 10 digits'],
    [' 1000000008', 'must be exactly 10 digits'],
  ])('rejects %s: %s', (value, problem) => {
    expect(checkNationalId(value)).toEqual({ valid: false, problem });
  });

  it('rejects non-strings', () => {
    expect(checkNationalId(1000000008)).toMatchObject({ valid: false });
    expect(checkNationalId(null)).toMatchObject({ valid: false });
  });

  it('any single-digit change of a valid ID breaks the check digit', () => {
    fc.assert(
      fc.property(fc.constantFrom('1', '2'), fc.stringMatching(/^[0-9]{8}$/), fc.nat(9), fc.integer({ min: 1, max: 9 }), (first, rest, pos, delta) => {
        const id = withCheckDigit(first + rest);
        const digit = (Number(id[pos + 1]) + delta) % 10;
        const changed = id.slice(0, pos + 1) + digit + id.slice(pos + 2);
        expect(checkNationalId(id).valid).toBe(true);
        expect(checkNationalId(changed).valid).toBe(false);
      }),
      { seed: 42, numRuns: 500 },
    );
  });
});

describe('mobile', () => {
  it.each(['0512345678', '512345678', '966512345678', '00966512345678', '+966512345678'])('normalises %s', (spelling) => {
    expect(normalizeMobile(spelling)).toEqual({ valid: true, e164: '+966512345678' });
  });

  it.each(['0412345678', '05123456789', '+9660512345678', '+96651234567', '0112345678', '+971512345678', '05 1234 5678', '', '9665123456'])(
    'rejects %s',
    (spelling) => {
      expect(normalizeMobile(spelling)).toMatchObject({ valid: false });
    },
  );
});

describe('redaction', () => {
  it('masks national IDs, mobiles in every spelling and PANs inside text', () => {
    const text =
      'id=1000000008 m1=0512345678 m2=+966512345678 m3=00966512345678 m4=966512345678 m5=512345678 pan=4111111111111111 stan=000123';
    const out = redactPersonalData(text);
    for (const secret of ['1000000008', '0512345678', '512345678', '4111111111111111']) expect(out).not.toContain(secret);
    expect(out).toContain('stan=000123');
    expect(out).toContain('1*******08');
  });

  it('leaves ten-digit numbers that are not Luhn-valid (an ISO 8583 field 7) readable', () => {
    expect(redactPersonalData('"7":"1123101530"')).toBe('"7":"1123101530"');
  });

  it('leaves ISO timestamps and UUIDs readable', () => {
    const text = '2026-11-23T10:00:00.000Z 3f1c2a9e-8d7b-4c6a-9e0f-1a2b3c4d5e6f';
    expect(redactPersonalData(text)).toBe(text);
  });
});
