/**
 * Field 48 of the ATM channel: tag (2 characters), length (3 digits), value;
 * e.g. NI0101000000008MN0100512345678 (spec 4.2).
 */
export class TlvError extends Error {}

export function parseTlv(text: string): Map<string, string> {
  const values = new Map<string, string>();
  let offset = 0;
  while (offset < text.length) {
    if (text.length - offset < 5) throw new TlvError(`field 48 ends inside a tag header at position ${offset}`);
    const tag = text.slice(offset, offset + 2);
    const lengthText = text.slice(offset + 2, offset + 5);
    if (!/^[A-Z0-9]{2}$/.test(tag)) throw new TlvError(`field 48 has an invalid tag at position ${offset}`);
    if (!/^[0-9]{3}$/.test(lengthText)) throw new TlvError(`field 48 tag ${tag} has a length that is not 3 digits`);
    const length = Number(lengthText);
    const value = text.slice(offset + 5, offset + 5 + length);
    if (value.length !== length) throw new TlvError(`field 48 tag ${tag} announces ${length} characters but has ${value.length}`);
    if (values.has(tag)) throw new TlvError(`field 48 repeats tag ${tag}`);
    values.set(tag, value);
    offset += 5 + length;
  }
  return values;
}

export function buildTlv(values: ReadonlyArray<readonly [string, string]>): string {
  return values
    .map(([tag, value]) => {
      if (!/^[A-Z0-9]{2}$/.test(tag)) throw new TlvError(`invalid tag ${tag}`);
      if (value.length > 999) throw new TlvError(`value of ${tag} is longer than 999`);
      return `${tag}${String(value.length).padStart(3, '0')}${value}`;
    })
    .join('');
}
