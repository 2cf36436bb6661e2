import { normalizeMobile } from './mobile';
import { checkNationalId, luhnValid } from './national-id';

/**
 * Last line of defence for personal data in free text (log lines, error
 * details): national IDs, Saudi mobiles in any accepted spelling, and
 * card numbers (PAN, 12-19 digits) are replaced by masks. Structured code
 * should never put them in text in the first place; this catches what slips.
 */
const PAN = /(?<![0-9])[0-9]{12,19}(?![0-9])/g;
const NATIONAL_ID = /(?<![0-9])[12][0-9]{9}(?![0-9])/g;
const MOBILE = /(?<![0-9+])(?:\+966|00966|966|0)?5[0-9]{8}(?![0-9])/g;

/**
 * An ISO 8583 field-48 element (libs/iso8583/tlv.ts): tag, 3-digit length,
 * value. Its value touches the length digits (NI0101000000008), so the digit
 * boundaries below never see it as a number of its own.
 */
const TLV_ELEMENT = /([A-Z][A-Z0-9])([0-9]{3})/g;
/** Field 48's national ID and mobile tags (spec 4.2): their values are masked even when not valid (a mistyped ID is still one). */
const PERSONAL_TAGS = new Set(['NI', 'MN']);

export function redactPersonalData(text: string): string {
  return maskTlvValues(text)
    // Card numbers carry a Luhn check digit; other long numbers (timestamps) mostly do not.
    .replace(PAN, (m) => (luhnValid(m) ? `[PAN ${m.length} digits]` : m))
    // National IDs carry a Luhn check digit too; dates like field 7's MMDDhhmmss mostly do not.
    .replace(NATIONAL_ID, (m) => (luhnValid(m) ? `${m[0]}*******${m.slice(-2)}` : m))
    .replace(MOBILE, (m) => `${m.slice(0, m.length - 8)}******${m.slice(-2)}`);
}

/**
 * Masks the value of every TLV-shaped element tagged NI or MN, or whose
 * value, read with its announced length, is a national ID or a mobile;
 * tags, lengths and everything else are left as they are, so the field
 * stays readable. The value keeps its length, so the elements after it
 * still line up.
 */
function maskTlvValues(text: string): string {
  let out = '';
  let copied = 0;
  TLV_ELEMENT.lastIndex = 0;
  for (let match = TLV_ELEMENT.exec(text); match; match = TLV_ELEMENT.exec(text)) {
    const start = match.index + 5;
    const value = text.slice(start, start + Number(match[2]));
    if (value.length !== Number(match[2])) continue;
    let masked: string | null = null;
    if (checkNationalId(value).valid) masked = `${value[0]}*******${value.slice(-2)}`;
    else if (normalizeMobile(value).valid) masked = `${value.slice(0, value.length - 8)}******${value.slice(-2)}`;
    else if (PERSONAL_TAGS.has(match[1])) masked = value.length < 6 ? '*'.repeat(value.length) : `${value[0]}${'*'.repeat(value.length - 3)}${value.slice(-2)}`;
    if (masked === null || value.length === 0) continue;
    out += text.slice(copied, start) + masked;
    copied = start + value.length;
    TLV_ELEMENT.lastIndex = copied;
  }
  return copied === 0 ? text : out + text.slice(copied);
}
