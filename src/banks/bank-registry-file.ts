import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';
import { CHANNELS, Channel } from '../activation/activation.types';
import { TLS_CLIENT_PATTERN } from '../../libs/pki';

/** One bank as BANKS_FILE describes it (spec section 6). */
export interface BankFileEntry {
  code: string;
  name: string;
  channels: Channel[];
  /** Absolute paths of PEM files (a certificate, optionally followed by its intermediates). */
  certificateFiles: string[];
  acquirerIds: string[];
  /** Hex of the double-length 3DES key, when given (ISO 8583 channel). */
  macKey: string | null;
  /** The TLS client certificates of the bank, by thumbprint or `CN=` common name (mutual TLS). */
  tlsClients: string[];
  rateLimitPerSecond: number;
}

export class BankRegistryFileError extends Error {}

/** Reads and checks BANKS_FILE; a structural mistake stops the gateway with the file, the bank and the field. */
export function readBankRegistryFile(path: string): BankFileEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new BankRegistryFileError(`BANKS_FILE ${path} cannot be read: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    throw new BankRegistryFileError(`BANKS_FILE ${path} is not valid YAML: ${(error as Error).message}`);
  }
  const banks = (document as { banks?: unknown })?.banks;
  if (!Array.isArray(banks)) throw new BankRegistryFileError(`BANKS_FILE ${path} must have a top-level "banks" list`);
  const base = dirname(resolve(path));
  const seen = new Set<string>();
  const acquirers = new Map<string, string>();
  return banks.map((raw, index) => {
    const where = `BANKS_FILE ${path}, banks[${index}]`;
    const bank = raw as Record<string, unknown>;
    const fail = (field: string, problem: string): never => {
      throw new BankRegistryFileError(`${where}${typeof bank?.code === 'string' ? ` (${bank.code})` : ''}: ${field} ${problem}`);
    };
    if (typeof bank !== 'object' || bank === null) fail('entry', 'must be a mapping');
    const allowed = ['code', 'name', 'channels', 'certificates', 'acquirerIds', 'macKey', 'macKeyFile', 'rateLimitPerSecond', 'tlsClients'];
    for (const key of Object.keys(bank)) if (!allowed.includes(key)) fail(key, `is not a known field (known: ${allowed.join(', ')})`);
    if (typeof bank.code !== 'string' || !/^[A-Z]{4}$/.test(bank.code)) fail('code', 'must be 4 capital letters (the bank part of the BIC)');
    const code = bank.code as string;
    if (seen.has(code)) fail('code', 'appears twice');
    seen.add(code);
    if (typeof bank.name !== 'string' || bank.name.trim() === '') fail('name', 'must be a non-empty string');
    if (!Array.isArray(bank.channels) || bank.channels.some((c) => !CHANNELS.includes(c as Channel))) {
      fail('channels', `must be a list of ${CHANNELS.join(', ')}`);
    }
    const certificates = bank.certificates ?? [];
    if (!Array.isArray(certificates) || certificates.some((c) => typeof c !== 'string')) fail('certificates', 'must be a list of file paths');
    const acquirerIds = bank.acquirerIds ?? [];
    if (!Array.isArray(acquirerIds) || acquirerIds.some((a) => typeof a !== 'string' || !/^[0-9]{1,11}$/.test(a))) {
      fail('acquirerIds', 'must be a list of quoted strings of 1-11 digits (ISO 8583 field 32)');
    }
    for (const acquirer of acquirerIds as string[]) {
      if (acquirers.has(acquirer)) fail('acquirerIds', `"${acquirer}" is already used by ${acquirers.get(acquirer)}`);
      acquirers.set(acquirer, code);
    }
    if (bank.macKey !== undefined && bank.macKeyFile !== undefined) fail('macKey', 'and macKeyFile cannot both be given');
    let macKey: string | null = null;
    if (bank.macKey !== undefined) macKey = String(bank.macKey);
    if (bank.macKeyFile !== undefined) {
      if (typeof bank.macKeyFile !== 'string') fail('macKeyFile', 'must be a file path');
      try {
        macKey = readFileSync(resolve(base, bank.macKeyFile as string), 'utf8').trim();
      } catch (error) {
        fail('macKeyFile', `cannot be read: ${(error as Error).message}`);
      }
    }
    if (macKey !== null && !/^[0-9A-Fa-f]{32}$/.test(macKey)) fail('macKey', 'must be 32 hex digits (a double-length 3DES key)');
    const tlsClients = bank.tlsClients ?? [];
    if (!Array.isArray(tlsClients) || tlsClients.some((c) => typeof c !== 'string' || !TLS_CLIENT_PATTERN.test(c))) {
      fail('tlsClients', 'must be a list of client certificate thumbprints (43 characters, as a kid) or "CN=" and a common name');
    }
    const rate = bank.rateLimitPerSecond;
    if (typeof rate !== 'number' || !Number.isInteger(rate) || rate < 1) fail('rateLimitPerSecond', 'must be a whole number of at least 1');
    return {
      code,
      name: (bank.name as string).trim(),
      channels: [...new Set(bank.channels as Channel[])],
      certificateFiles: (certificates as string[]).map((file) => resolve(base, file)),
      acquirerIds: acquirerIds as string[],
      macKey: macKey?.toUpperCase() ?? null,
      rateLimitPerSecond: rate as number,
      tlsClients: tlsClients as string[],
    };
  });
}
