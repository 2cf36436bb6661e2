import { readFileSync } from 'node:fs';
import { contractFile, FIELDS } from './field-formats';
import type { IsoFields } from './codec';

/** One message type of contracts/iso8583/messages.json: what the gateway requires of a request and echoes in its answer. */
export interface MessageDefinition {
  mti: string;
  name: string;
  /** Whether it carries a MAC (spec 4.3); answers that prove nothing go without, see the contract's description. */
  mac: boolean;
  /** The MTI of its answer, for a request. */
  answer?: string;
  /** A request's fields whose absence is answered 30. */
  required?: number[];
  /** An answer's fields copied from its request when the request has them. */
  echoes?: number[];
  processingCode?: string;
  /** Field 48 tags, by meaning. */
  tags?: Record<string, string>;
  /** Field 70 values of an 0800 and what they ask for. */
  informationCodes?: Record<string, string>;
}

interface MessageTable {
  messages: MessageDefinition[];
  otherRequests: { echoes: number[] };
  unreadable: { required: number[]; echoes: number[] };
}

export class MessageDefinitionError extends Error {}

/** Checks a message table against the field table, so a field named in one and not the other fails at start-up, not on the wire. */
export function checkMessageTable(table: MessageTable, known: ReadonlySet<number>): MessageTable {
  const named = (where: string, fields: number[] | undefined) => {
    for (const field of fields ?? []) if (!known.has(field)) throw new MessageDefinitionError(`${where} names field ${field}, which contracts/iso8583/fields.json does not define`);
  };
  const mtis = new Set<string>();
  for (const message of table.messages) {
    if (mtis.has(message.mti)) throw new MessageDefinitionError(`message ${message.mti} is defined twice`);
    mtis.add(message.mti);
    named(`message ${message.mti} (required)`, message.required);
    named(`message ${message.mti} (echoes)`, message.echoes);
  }
  for (const message of table.messages) {
    if (message.answer && !mtis.has(message.answer)) throw new MessageDefinitionError(`message ${message.mti} is answered by ${message.answer}, which is not defined`);
  }
  named('otherRequests', table.otherRequests.echoes);
  named('unreadable', [...table.unreadable.required, ...table.unreadable.echoes]);
  return table;
}

export const MESSAGE_TABLE: MessageTable = checkMessageTable(
  JSON.parse(readFileSync(contractFile('messages.json'), 'utf8')),
  new Set(FIELDS.keys()),
);
const BY_MTI = new Map(MESSAGE_TABLE.messages.map((m) => [m.mti, m]));

/** The definition of a message type; undefined for one the channel does not know. */
export function messageDefinition(mti: string): MessageDefinition | undefined {
  return BY_MTI.get(mti);
}

function defined(mti: string): MessageDefinition {
  const definition = BY_MTI.get(mti);
  if (!definition) throw new MessageDefinitionError(`message ${mti} is not in contracts/iso8583/messages.json`);
  return definition;
}

/** Whether a message type is a request that carries a MAC (spec 4.3): those are proven before they are acted on. */
export function requestCarriesMac(mti: string): boolean {
  const definition = BY_MTI.get(mti);
  return definition?.mac === true && definition.answer !== undefined;
}

/** The fields a request of this type must carry; [] for one with none listed. */
export function requiredFields(mti: string): readonly number[] {
  return defined(mti).required ?? [];
}

/** The processing code (field 3) a request of this type must carry. */
export function processingCodeOf(mti: string): string {
  const code = defined(mti).processingCode;
  if (!code) throw new MessageDefinitionError(`message ${mti} has no processing code in contracts/iso8583/messages.json`);
  return code;
}

/** The fields an answer of this type copies from its request. */
export function echoedFields(answerMti: string): readonly number[] {
  return defined(answerMti).echoes ?? [];
}

/** The fields of `request` that an answer of type `answerMti` echoes (of those the request has), with `added` on top. */
export function echo(request: IsoFields, answerMti: string, added: IsoFields = {}): IsoFields {
  return pickFields(request, echoedFields(answerMti), { 0: answerMti, ...added });
}

/** The fields a required list names that `fields` lacks. */
export function missingFields(fields: IsoFields, required: readonly number[]): number[] {
  return required.filter((field) => fields[field] === undefined);
}

export function pickFields(fields: IsoFields, numbers: readonly number[], extra: IsoFields = {}): IsoFields {
  const picked: IsoFields = { ...extra };
  for (const number of numbers) if (fields[number] !== undefined) picked[number] = fields[number];
  return picked;
}
