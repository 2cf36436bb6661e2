import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { checkNationalId, luhnValid, normalizeMobile } from '../../libs/identity';
import { UsageError } from '../options';

/** One test customer as the identity core registered them: the mobile is E.164 once loaded. */
export interface TestCustomer {
  nationalId: string;
  mobile: string;
}

export type CustomerRole = 'accepted' | 'mobileMismatch' | 'alreadyActive' | 'suspended' | 'mobileInUse' | 'notRegistered';
export type TestCustomers = Partial<Record<CustomerRole, TestCustomer>>;

/**
 * What each entry of the customers file must be registered as, what the kit
 * sends for it, and what the gateway must answer (spec 2). `notRegistered` is
 * optional: a fresh random national ID is not registered anywhere.
 */
export const CUSTOMER_ROLES: Record<CustomerRole, { registration: string; sent: string; outcome: string; optional: boolean }> = {
  accepted: { registration: 'PENDING_ACTIVATION with this mobile, held by no one else', sent: 'sent with the same mobile', outcome: 'ACCEPTED (00)', optional: false },
  mobileMismatch: { registration: 'PENDING_ACTIVATION with this mobile', sent: 'sent with another mobile', outcome: 'REJECTED MOBILE_MISMATCH (N1)', optional: false },
  alreadyActive: { registration: 'ACTIVE with this mobile', sent: 'sent with the same mobile', outcome: 'REJECTED ALREADY_ACTIVE (N2)', optional: false },
  suspended: { registration: 'SUSPENDED with this mobile', sent: 'sent with the same mobile', outcome: 'REJECTED ACCOUNT_SUSPENDED (N4)', optional: false },
  mobileInUse: { registration: 'PENDING_ACTIVATION with this mobile, which another registration (not CLOSED) also holds', sent: 'sent with the same mobile', outcome: 'REJECTED MOBILE_IN_USE (N3)', optional: false },
  notRegistered: { registration: 'no registration (or CLOSED); "mobile" may be left out', sent: 'sent with any mobile', outcome: 'REJECTED NOT_REGISTERED (25)', optional: true },
};

/**
 * Reads and checks the operator's file. Errors name the entry and field but
 * never the value: the file holds national IDs and mobiles.
 */
export function loadCustomers(path: string): TestCustomers {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new UsageError(`--customers ${path} is not JSON: ${(error as Error).message.replace(/[0-9]{5,}/g, '…')}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`--customers ${path} must be a JSON object of test customers by role`);
  const customers: TestCustomers = {};
  for (const [role, entry] of Object.entries(parsed)) {
    // A misspelt role would otherwise be silently skipped, and its cases with it.
    if (!(role in CUSTOMER_ROLES)) throw new UsageError(`--customers: unknown role "${role}"; the roles are ${Object.keys(CUSTOMER_ROLES).join(', ')}`);
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new UsageError(`--customers: "${role}" must be an object with nationalId and mobile`);
    const fields = entry as Record<string, unknown>;
    const extra = Object.keys(fields).filter((key) => key !== 'nationalId' && key !== 'mobile');
    if (extra.length) throw new UsageError(`--customers: "${role}" has unknown fields ${extra.join(', ')}; only nationalId and mobile`);
    const id = checkNationalId(fields.nationalId);
    if (!id.valid) throw new UsageError(`--customers: ${role}.nationalId ${id.problem}`);
    let mobile: string;
    if (fields.mobile === undefined && role === 'notRegistered') {
      mobile = freshMobile();
    } else {
      const phone = normalizeMobile(fields.mobile);
      if (!phone.valid) throw new UsageError(`--customers: ${role}.mobile ${phone.problem}`);
      mobile = phone.e164;
    }
    customers[role as CustomerRole] = { nationalId: id.nationalId, mobile };
  }
  return customers;
}

/** A Luhn-valid national ID nobody registered (for all practical purposes: one in 10^8). */
export function freshNationalId(kind: '1' | '2' = '1'): string {
  const body = kind + String(randomInt(100_000_000)).padStart(8, '0');
  for (let digit = 0; digit <= 9; digit++) if (luhnValid(body + digit)) return body + digit;
  throw new Error('unreachable: one check digit always fits');
}

export function freshMobile(): string {
  return `+9665${String(randomInt(100_000_000)).padStart(8, '0')}`;
}

/** The same mobile as most banks hold it: 05XXXXXXXX. */
export function localSpelling(e164: string): string {
  return `0${e164.slice(4)}`;
}

/** A mobile that differs from `e164` in its last digit: certainly not the registered one. */
export function anotherMobile(e164: string): string {
  return e164.slice(0, -1) + String((Number(e164.slice(-1)) + 1) % 10);
}
