import { IsoFields } from '../../libs/iso8583';

/** A test PAN (never a real one); the gateway stores only its keyed hash. */
export const TEST_PAN = '4111111111111111';
/** TSTA's MAC key and acquirer in the test bank registry (test-pki.ts). */
export const TSTA_MAC_KEY = Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex');
export const TSTA_ACQUIRER = '111111';

/** One fixed 0200, without its MAC: the codec and MAC tests' sample (nothing about it changes between runs). */
export const SAMPLE_0200: IsoFields = {
  0: '0200',
  2: TEST_PAN,
  3: '910000',
  7: '1123100000',
  11: '000123',
  12: '100000',
  13: '1123',
  32: TSTA_ACQUIRER,
  37: '123456789012',
  41: 'TERM0001',
  48: 'NI0101000000008MN0100512345678',
};

// Random start: test files share nothing, but a STAN/RRN repeated within one gateway would be a duplicate.
let stanCounter = 100000 + Math.floor(Math.random() * 800000);

/** The next STAN of this test process. */
export function nextStan(): string {
  return String((++stanCounter % 999_999) + 1).padStart(6, '0');
}

/**
 * A 0200 activation request (spec 4.2) as an ATM switch sends it: a fresh
 * STAN, an RRN made from it (`rrnPrefix` + STAN + 000), field 48 with the
 * national ID and mobile.
 */
export function atmActivation(
  customer: { nationalId: string; mobile: string },
  options: { acquirer?: string; terminal?: string; rrnPrefix?: string; overrides?: IsoFields } = {},
): IsoFields {
  const stan = nextStan();
  return {
    0: '0200',
    2: TEST_PAN,
    3: '910000',
    7: '1123101500',
    11: stan,
    12: '101500',
    13: '1123',
    32: options.acquirer ?? TSTA_ACQUIRER,
    37: `${options.rrnPrefix ?? 'RRN'}${stan}000`,
    41: options.terminal ?? 'ATM00042',
    48: `NI010${customer.nationalId}MN${String(customer.mobile.length).padStart(3, '0')}${customer.mobile}`,
    ...options.overrides,
  };
}

/** The request id the gateway gives an ATM request (README: acquirer:field7:STAN:RRN:terminal). */
export function atmRequestId(fields: IsoFields): string {
  return `${fields[32]}:${fields[7]}:${fields[11]}:${fields[37]}:${fields[41]}`;
}
