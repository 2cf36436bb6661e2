import { luhnValid } from '../../libs/identity';

let counter = Math.floor(Math.random() * 1_000_000);

/** A fresh Luhn-valid national ID (citizen `1`, resident `2`). */
export function newNationalId(kind: '1' | '2' = '1'): string {
  const body = kind + String(counter++ % 100_000_000).padStart(8, '0');
  for (let digit = 0; digit <= 9; digit++) if (luhnValid(body + digit)) return body + digit;
  throw new Error('unreachable');
}

let mobileCounter = Math.floor(Math.random() * 10_000_000);

/** A fresh Saudi mobile in E.164. */
export function newMobile(): string {
  return `+9665${String(mobileCounter++ % 100_000_000).padStart(8, '0')}`;
}

/** The same mobile as a bank might hold it: 05XXXXXXXX. */
export function localSpelling(e164: string): string {
  return `0${e164.slice(4)}`;
}
