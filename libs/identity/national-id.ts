/**
 * Saudi national ID (citizens, first digit 1) and iqama (residents, first
 * digit 2): 10 digits with a Luhn check digit.
 */
export type NationalIdKind = 'CITIZEN' | 'RESIDENT';

export type NationalIdCheck =
  | { valid: true; nationalId: string; kind: NationalIdKind }
  | { valid: false; problem: string };

const TEN_DIGITS = /^[0-9]{10}$/;

export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

export function checkNationalId(value: unknown): NationalIdCheck {
  if (typeof value !== 'string') return { valid: false, problem: 'must be a string of 10 digits' };
  if (!TEN_DIGITS.test(value)) return { valid: false, problem: 'must be exactly 10 digits' };
  const first = value[0];
  if (first !== '1' && first !== '2') {
    return { valid: false, problem: 'must start with 1 (citizen) or 2 (resident)' };
  }
  if (!luhnValid(value)) return { valid: false, problem: 'fails the Luhn check digit' };
  return { valid: true, nationalId: value, kind: first === '1' ? 'CITIZEN' : 'RESIDENT' };
}

/** A masked form for people to read (support, logs): first and last two digits only. */
export function maskNationalId(nationalId: string): string {
  return nationalId.length < 4 ? '****' : `${nationalId.slice(0, 1)}*******${nationalId.slice(-2)}`;
}
