import { checkNationalId, isE164Mobile } from '../../libs/identity';
import { REGISTRATION_STATUSES, RegistrationStatus } from '../activation/activation.types';
import { readCloudEvent } from '../kafka/cloud-event-reader';
import { EVENT_TYPES } from '../kafka/topics';

export interface RegistrationUpdate {
  nationalId: string;
  mobile: string;
  status: RegistrationStatus;
  version: bigint;
}

export type ParsedUpdate = { ok: true; update: RegistrationUpdate } | { ok: false; reason: string };

/** Reads one `sa.absher.registration.updated` message (spec 5.2); says precisely what is wrong otherwise. */
export function parseRegistrationUpdate(key: Buffer | null, value: Buffer | null): ParsedUpdate {
  const event = readCloudEvent(value, EVENT_TYPES.registrationUpdated);
  if (!event.ok) return event;
  const data = event.data;
  const id = checkNationalId(data.nationalId);
  if (!id.valid) return { ok: false, reason: `data.nationalId ${id.problem}` };
  if (!isE164Mobile(data.mobile)) return { ok: false, reason: 'data.mobile must be E.164 +9665XXXXXXXX' };
  if (!REGISTRATION_STATUSES.includes(data.status as RegistrationStatus)) {
    return { ok: false, reason: `data.status must be one of ${REGISTRATION_STATUSES.join(', ')}` };
  }
  if (typeof data.version !== 'number' || !Number.isSafeInteger(data.version) || data.version < 0) {
    return { ok: false, reason: 'data.version must be a non-negative integer' };
  }
  if (key && key.toString() !== id.nationalId) return { ok: false, reason: 'message key differs from data.nationalId' };
  return { ok: true, update: { nationalId: id.nationalId, mobile: data.mobile, status: data.status as RegistrationStatus, version: BigInt(data.version) } };
}
