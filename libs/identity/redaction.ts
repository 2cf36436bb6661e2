import { luhnValid } from './national-id';

/**
 * Last line of defence for personal data in free text (log lines, error
 * details): national IDs, Saudi mobiles in any accepted spelling, and
 * card numbers (PAN, 12-19 digits) are replaced by masks. Structured code
 * should never put them in text in the first place; this catches what slips.
 */
const PAN = /(?<![0-9])[0-9]{12,19}(?![0-9])/g;
const NATIONAL_ID = /(?<![0-9])[12][0-9]{9}(?![0-9])/g;
const MOBILE = /(?<![0-9+])(?:\+966|00966|966|0)?5[0-9]{8}(?![0-9])/g;

export function redactPersonalData(text: string): string {
  return text
    // Card numbers carry a Luhn check digit; other long numbers (timestamps) mostly do not.
    .replace(PAN, (m) => (luhnValid(m) ? `[PAN ${m.length} digits]` : m))
    // National IDs carry a Luhn check digit too; dates like field 7's MMDDhhmmss mostly do not.
    .replace(NATIONAL_ID, (m) => (luhnValid(m) ? `${m[0]}*******${m.slice(-2)}` : m))
    .replace(MOBILE, (m) => `${m.slice(0, m.length - 8)}******${m.slice(-2)}`);
}
