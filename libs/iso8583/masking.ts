import { FIELDS } from './field-formats';
import { IsoFields } from './codec';
import { parseTlv } from './tlv';

/**
 * A copy of a message that is safe to log (jPOS's ProtectedLogListener idea):
 * the PAN shows its first 6 and last 4 digits, tracks and PIN data are
 * hidden, and field 48 keeps its tags and lengths but not its values. The
 * fields to mask come from contracts/iso8583/fields.json.
 */
export function maskForLog(fields: IsoFields): Record<string, string> {
  const safe: Record<string, string> = {};
  for (const [key, value] of Object.entries(fields)) {
    const spec = FIELDS.get(Number(key));
    switch (spec?.mask) {
      case 'pan':
        safe[key] = value.length >= 12 ? `${value.slice(0, 6)}${'*'.repeat(value.length - 10)}${value.slice(-4)}` : '*'.repeat(value.length);
        break;
      case 'all':
        safe[key] = `[${value.length} hidden]`;
        break;
      case 'tlv-values':
        try {
          safe[key] = [...parseTlv(value)].map(([tag, v]) => `${tag}${String(v.length).padStart(3, '0')}${'*'.repeat(v.length)}`).join('');
        } catch {
          safe[key] = `[${value.length} hidden]`;
        }
        break;
      default:
        safe[key] = value;
    }
  }
  return safe;
}
