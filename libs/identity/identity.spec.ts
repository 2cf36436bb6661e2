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

  describe('inside an ISO 8583 field-48 TLV string', () => {
    it.each([
      ['NI0101000000008MN0100512345678', ['1000000008', '0512345678', '512345678'], 'NI0101*******08MN01005******78'],
      ['NI0101234567890MN013+966512345678', ['1234567890', '966512345678', '512345678'], 'NI0101*******90MN013+9665******78'],
      ['"48":"MN01400966512345678NI0102000000006"', ['00966512345678', '2000000006', '512345678'], '"48":"MN014009665******78NI0102*******06"'],
      ['XX003abcNI0101000000008', ['1000000008'], 'XX003abcNI0101*******08'],
      ['AB0101000000008', ['1000000008'], 'AB0101*******08'],
      ['NI00512345', ['12345'], 'NI005*****'],
    ])('masks %s', (text, secrets, expected) => {
      const out = redactPersonalData(text);
      for (const secret of secrets) expect(out).not.toContain(secret);
      expect(out).toBe(expected);
    });

    it('leaves other elements, and TLV-shaped text that holds no personal data, as they are', () => {
      expect(redactPersonalData('XX003abcYY0021Z')).toBe('XX003abcYY0021Z');
      expect(redactPersonalData('tag AB012 length 2026-11-23T10:00:00.000Z')).toBe('tag AB012 length 2026-11-23T10:00:00.000Z');
    });

    it('masks every ID and mobile in any field-48 string the ATM channel could be sent', () => {
      const id = fc.tuple(fc.constantFrom('1', '2'), fc.stringMatching(/^[0-9]{8}$/)).map(([first, rest]) => withCheckDigit(first + rest));
      const mobile = fc.tuple(fc.constantFrom('05', '5', '9665', '009665', '+9665'), fc.stringMatching(/^[0-9]{8}$/)).map(([prefix, rest]) => prefix + rest);
      const other = fc.tuple(fc.stringMatching(/^[A-Z][A-Z0-9]$/).filter((t) => t !== 'NI' && t !== 'MN'), fc.stringMatching(/^[a-z ]{0,12}$/));
      fc.assert(
        fc.property(id, mobile, fc.array(other, { maxLength: 3 }), fc.boolean(), (nationalId, phone, extras, idFirst) => {
          const elements: Array<[string, string]> = idFirst ? [['NI', nationalId], ['MN', phone]] : [['MN', phone], ['NI', nationalId]];
          elements.splice(1, 0, ...extras);
          const text = elements.map(([tag, value]) => `${tag}${String(value.length).padStart(3, '0')}${value}`).join('');
          const out = redactPersonalData(`field 48 ${text} refused`);
          expect(out).not.toContain(nationalId);
          expect(out).not.toContain(phone.slice(-9));
          expect(out.length).toBe(`field 48 ${text} refused`.length);
        }),
        { seed: 48, numRuns: 1000 },
      );
    });
  });
});
