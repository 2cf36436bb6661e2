import { IsoFields, IsoFormatError } from './codec';
import { messageDefinition, missingFields, requiredFields } from './message-definitions';
import { parseTlv, TlvError } from './tlv';

/**
 * Typed views of the requests of spec 4.2, decoded once from unpacked
 * fields; handlers read names, not field numbers. A view is made only of a
 * message that has every field its definition requires.
 */
export type Decoded<T> = { ok: true; message: T } | { ok: false; missing: number[]; problem: string };

export interface ActivationRequest0200 {
  mti: '0200';
  pan: string;
  processingCode: string;
  /** Field 7, MMDDhhmmss. */
  transmittedAt: string;
  stan: string;
  localTime: string;
  localDate: string;
  acquirerId: string;
  rrn: string;
  terminalId: string;
  /** Field 48's tags; undefined when absent (judged by the caller, with the rules of a national ID and a mobile). */
  nationalId: string | undefined;
  mobile: string | undefined;
}

/** Field 90 of a reversal advice: what identifies the 0200 it reverses. */
export interface OriginalDataElements {
  mti: string;
  stan: string;
  transmittedAt: string;
  /** Null when the field is all zeros: the acquirer of the advice itself. */
  acquirerId: string | null;
  forwardingInstitutionId: string | null;
}

export interface ReversalAdvice0420 {
  mti: '0420' | '0421';
  stan: string | undefined;
  acquirerId: string | undefined;
  rrn: string;
  terminalId: string;
  original: OriginalDataElements;
}

export interface NetworkManagement0800 {
  mti: '0800';
  stan: string | undefined;
  /** Field 70, and what it asks for (sign-on, sign-off, echo); `purpose` null for a code the contract does not list. */
  informationCode: string | undefined;
  purpose: string | null;
}

function incomplete<T>(fields: IsoFields): Decoded<T> | null {
  const missing = missingFields(fields, requiredFields(fields[0]));
  return missing.length ? { ok: false, missing, problem: `field${missing.length > 1 ? 's' : ''} ${missing.join(', ')} missing` } : null;
}

/** An 0200 with its field 48 parsed; a field missing, or a field 48 that is not TLV, is a malformed request. */
export function readActivationRequest(fields: IsoFields): Decoded<ActivationRequest0200> {
  const missing = incomplete<ActivationRequest0200>(fields);
  if (missing) return missing;
  let tags: Map<string, string>;
  try {
    tags = parseTlv(fields[48]);
  } catch (error) {
    if (error instanceof TlvError) return { ok: false, missing: [], problem: error.message };
    throw error;
  }
  return {
    ok: true,
    message: {
      mti: '0200',
      pan: fields[2],
      processingCode: fields[3],
      transmittedAt: fields[7],
      stan: fields[11],
      localTime: fields[12],
      localDate: fields[13],
      acquirerId: fields[32],
      rrn: fields[37],
      terminalId: fields[41],
      nationalId: tags.get('NI'),
      mobile: tags.get('MN'),
    },
  };
}

/** Spec 4.2: original MTI (4), STAN (6), transmission date and time (10), acquirer (11, zero-padded left), forwarding institution (11). */
export function parseOriginalDataElements(field90: string): OriginalDataElements {
  if (!/^[0-9]{42}$/.test(field90)) throw new IsoFormatError('field 90 is not 42 digits');
  const institution = (text: string) => (/[1-9]/.test(text) ? text : null);
  return {
    mti: field90.slice(0, 4),
    stan: field90.slice(4, 10),
    transmittedAt: field90.slice(10, 20),
    acquirerId: institution(field90.slice(20, 31)),
    forwardingInstitutionId: institution(field90.slice(31, 42)),
  };
}

/** The inverse of parseOriginalDataElements, for a switch writing an advice. */
export function buildOriginalDataElements(original: { mti: string; stan: string; transmittedAt: string; acquirerId: string | null; forwardingInstitutionId?: string | null }): string {
  return `${original.mti}${original.stan}${original.transmittedAt}${(original.acquirerId ?? '').padStart(11, '0')}${(original.forwardingInstitutionId ?? '').padStart(11, '0')}`;
}

export function readReversalAdvice(fields: IsoFields): Decoded<ReversalAdvice0420> {
  const missing = incomplete<ReversalAdvice0420>(fields);
  if (missing) return missing;
  return {
    ok: true,
    message: {
      mti: fields[0] as '0420' | '0421',
      stan: fields[11],
      acquirerId: fields[32],
      rrn: fields[37],
      terminalId: fields[41],
      original: parseOriginalDataElements(fields[90]),
    },
  };
}

export function readNetworkManagement(fields: IsoFields): NetworkManagement0800 {
  const code = fields[70];
  const requests = messageDefinition('0800')?.informationCodes ?? {};
  return { mti: '0800', stan: fields[11], informationCode: code, purpose: code !== undefined && Object.hasOwn(requests, code) ? requests[code] : null };
}
