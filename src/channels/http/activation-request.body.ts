import { isUtf8 } from 'node:buffer';
import { IsIn, IsOptional, registerDecorator, validateSync, ValidationArguments } from 'class-validator';
import { checkNationalId, normalizeMobile } from '../../../libs/identity';
import { parseStrictJson, StrictJsonError } from '../../../libs/json';
import { GatewayError } from '../../common/gateway-error';

/** Channels this API serves; ATM activations come over ISO 8583 (spec 4). */
export const SIGNED_JSON_CHANNELS = ['INTERNET_BANKING', 'PHONE_BANKING'] as const;
export type SignedJsonChannel = (typeof SIGNED_JSON_CHANNELS)[number];

function Check(check: (value: unknown) => string | null, code: string) {
  return (target: object, property: string) =>
    registerDecorator({
      name: `check${property}`,
      target: target.constructor,
      propertyName: property,
      options: { context: { code } },
      validator: {
        validate: (value: unknown) => check(value) === null,
        defaultMessage: (args?: ValidationArguments) => `${args?.property} ${check(args?.value)}`,
      },
    });
}

/** 1 to 64 characters (code points, as the store counts them), no control characters. */
function customerReferenceProblem(value: unknown): string | null {
  if (typeof value !== 'string') return 'must be a string';
  const length = [...value].length;
  if (length < 1 || length > 64) return 'must be 1 to 64 characters';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return 'must not contain control characters';
  return null;
}

/** The POST body (spec 3.4). Each property carries the error code it fails with. */
export class ActivationRequestBody {
  @Check((v) => { const r = checkNationalId(v); return r.valid ? null : r.problem; }, 'INVALID_NATIONAL_ID')
  nationalId!: string;

  @Check((v) => { const r = normalizeMobile(v); return r.valid ? null : r.problem; }, 'INVALID_MOBILE')
  mobile!: string;

  @IsIn(SIGNED_JSON_CHANNELS, { message: 'channel must be INTERNET_BANKING or PHONE_BANKING (ATM activations use ISO 8583)', context: { code: 'INVALID_CHANNEL' } })
  channel!: SignedJsonChannel;

  @IsOptional()
  @Check(customerReferenceProblem, 'MALFORMED_REQUEST')
  customerReference?: string;
}

const FIELDS = ['nationalId', 'mobile', 'channel', 'customerReference'] as const;
const PRECEDENCE = ['MALFORMED_REQUEST', 'INVALID_NATIONAL_ID', 'INVALID_MOBILE', 'INVALID_CHANNEL'] as const;

export interface ActivationRequest {
  nationalId: string;
  /** E.164. */
  mobile: string;
  channel: SignedJsonChannel;
  customerReference: string | null;
}

/** From the exact body bytes to a checked request, or a GatewayError saying precisely what is wrong. */
export function parseActivationRequest(body: Buffer): ActivationRequest {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw new GatewayError('MALFORMED_REQUEST', invalidUtf8Detail(body));
  }
  let json: unknown;
  try {
    // Strict (spec 3.3): a repeated member or a lone surrogate would let the bank's reading and ours differ.
    json = parseStrictJson(text);
  } catch (error) {
    if (!(error instanceof StrictJsonError)) throw error;
    throw new GatewayError('MALFORMED_REQUEST', bodyProblem(error));
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new GatewayError('MALFORMED_REQUEST', 'the body must be a JSON object');
  const unknown = Object.keys(json).filter((key) => !(FIELDS as readonly string[]).includes(key));
  if (unknown.length) {
    throw new GatewayError('MALFORMED_REQUEST', `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k.slice(0, 40))).join(', ')}; allowed: ${FIELDS.join(', ')}`);
  }
  const source = json as Record<string, unknown>;
  // Built field by field: never Object.assign untrusted JSON (a "__proto__" key).
  const dto = new ActivationRequestBody();
  dto.nationalId = source.nationalId as string;
  dto.mobile = source.mobile as string;
  dto.channel = source.channel as SignedJsonChannel;
  // null is the same as absent (contracts: activation-request.schema.json); the store has no other absence.
  if (source.customerReference !== undefined && source.customerReference !== null) dto.customerReference = source.customerReference as string;
  const errors = validateSync(dto);
  if (errors.length) {
    const failures = errors.map((error) => ({
      property: error.property,
      code: ((Object.values(error.contexts ?? {})[0] as { code?: string } | undefined)?.code ?? 'MALFORMED_REQUEST') as (typeof PRECEDENCE)[number],
      message: Object.values(error.constraints ?? {})[0] ?? `${error.property} is invalid`,
    }));
    failures.sort((a, b) => PRECEDENCE.indexOf(a.code) - PRECEDENCE.indexOf(b.code));
    const first = failures[0];
    throw new GatewayError(first.code, source[first.property] === undefined ? `${first.property} is required` : first.message);
  }
  return {
    nationalId: dto.nationalId,
    mobile: (normalizeMobile(dto.mobile) as { e164: string }).e164,
    channel: dto.channel,
    customerReference: dto.customerReference ?? null,
  };
}

function bodyProblem(error: StrictJsonError): string {
  switch (error.problem) {
    case 'DUPLICATE_MEMBER':
      return `the body repeats a member: ${error.message}; member names must be unique`;
    case 'LONE_SURROGATE':
      return `the body has a string with ${error.message}; strings must be well-formed Unicode`;
    case 'SYNTAX':
      return `the body is not JSON: ${error.message.slice(0, 120)}`;
  }
}

/**
 * Says where a body stops being UTF-8, so the bank can find the byte its
 * encoder got wrong (a Latin-1 name, a string cut mid-character). Only run
 * once decoding has failed, so honest requests never pay for it.
 */
function invalidUtf8Detail(body: Buffer): string {
  for (let offset = 0; offset < body.length; ) {
    const lead = body[offset];
    // The length a well-formed sequence starting with this byte would have (RFC 3629); 0: no sequence starts so.
    const length = lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
    const sequence = body.subarray(offset, offset + Math.max(length, 1));
    if (length === 0 || !isUtf8(sequence)) {
      const bytes = [...sequence].map((byte) => `0x${byte.toString(16).padStart(2, '0')}`).join(' ');
      return `the body is not valid UTF-8: the bytes at offset ${offset} (${bytes}) are not a well-formed UTF-8 sequence`;
    }
    offset += length;
  }
  return 'the body is not valid UTF-8';
}
