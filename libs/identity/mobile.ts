/**
 * Saudi mobile numbers. Banks hold them in many spellings; the gateway
 * accepts exactly these and always stores and emits E.164 `+9665XXXXXXXX`:
 *   05XXXXXXXX, 5XXXXXXXX, 9665XXXXXXXX, 009665XXXXXXXX, +9665XXXXXXXX
 */
export type MobileCheck = { valid: true; e164: string } | { valid: false; problem: string };

const ACCEPTED = /^(?:\+966|00966|966|0)?(5[0-9]{8})$/;
const E164 = /^\+9665[0-9]{8}$/;

export function normalizeMobile(value: unknown): MobileCheck {
  if (typeof value !== 'string') return { valid: false, problem: 'must be a string' };
  const match = ACCEPTED.exec(value);
  if (!match) {
    return {
      valid: false,
      problem: 'must be a Saudi mobile as 05XXXXXXXX, 5XXXXXXXX, 9665XXXXXXXX, 009665XXXXXXXX or +9665XXXXXXXX',
    };
  }
  return { valid: true, e164: `+966${match[1]}` };
}

export function isE164Mobile(value: unknown): value is string {
  return typeof value === 'string' && E164.test(value);
}

export function maskMobile(e164: string): string {
  return e164.length < 6 ? '****' : `${e164.slice(0, 5)}*****${e164.slice(-2)}`;
}
