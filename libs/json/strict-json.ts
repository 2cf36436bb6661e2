/**
 * JSON (RFC 8259) read strictly, in one pass: the value JSON.parse would
 * give, or a StrictJsonError. Stricter than JSON.parse in two ways that
 * matter for signed messages (spec 3.3): an object that repeats a member
 * name is refused (JSON.parse keeps the last, other readers the first, so
 * one signed body would have two meanings), and so is a string holding a
 * lone surrogate, raw or escaped (JSON.parse keeps it; stored as UTF-8 it
 * becomes U+FFFD, which is not what was signed).
 */
export type StrictJsonProblem = 'SYNTAX' | 'DUPLICATE_MEMBER' | 'LONE_SURROGATE' | 'TOO_DEEP';

export class StrictJsonError extends Error {
  constructor(
    readonly problem: StrictJsonProblem,
    message: string,
    /** DUPLICATE_MEMBER: the repeated name and where its object is (`$`, `$.a`, `$.a[2]`). */
    readonly member?: { name: string; path: string },
  ) {
    super(message);
  }
}

/**
 * Deeper nesting is refused rather than risking the stack; far beyond what
 * any message of ours has (the activation body is flat).
 */
export const MAX_DEPTH = 256;

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
const HEX4 = /^[0-9a-fA-F]{4}$/;
const LONE_SURROGATE = /\p{Cs}/u;

export function parseStrictJson(text: string): unknown {
  // One native scan (in unicode mode \p{Cs} matches only unpaired surrogates); after it, only \u escapes can make one.
  if (LONE_SURROGATE.test(text)) throw new StrictJsonError('LONE_SURROGATE', `a lone surrogate at position ${firstLoneSurrogate(text)}`);
  const reader = new Reader(text);
  reader.space();
  const value = reader.value(0);
  reader.space();
  if (reader.at < text.length) reader.fail(`unexpected ${describe(text[reader.at])} after the value`);
  return value;
}

class Reader {
  at = 0;
  /** Member names and indexes down to the current value; turned into text only for an error. */
  private readonly path: Array<string | number> = [];
  constructor(private readonly text: string) {}

  fail(message: string): never {
    throw new StrictJsonError('SYNTAX', `${message} at position ${this.at}`);
  }

  space(): void {
    const text = this.text;
    let at = this.at;
    for (;;) {
      const c = text.charCodeAt(at);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) at++;
      else break;
    }
    this.at = at;
  }

  value(depth: number): unknown {
    const c = this.text[this.at];
    switch (c) {
      case '{':
        return this.object(depth + 1);
      case '[':
        return this.array(depth + 1);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.number();
        return this.fail(c === undefined ? 'unexpected end of input' : `unexpected ${describe(c)}`);
    }
  }

  private object(depth: number): Record<string, unknown> {
    if (depth > MAX_DEPTH) throw new StrictJsonError('TOO_DEEP', `nested deeper than ${MAX_DEPTH} levels at position ${this.at}`);
    this.at++;
    const result: Record<string, unknown> = {};
    this.space();
    if (this.text[this.at] === '}') {
      this.at++;
      return result;
    }
    for (;;) {
      if (this.text[this.at] !== '"') this.fail('expected a member name in double quotes');
      const name = this.string();
      // Own properties only: "constructor" or "toString" are ordinary names here.
      if (Object.prototype.hasOwnProperty.call(result, name)) {
        const path = this.path.map((step) => (typeof step === 'number' ? `[${step}]` : `.${step.slice(0, 40)}`)).join('');
        throw new StrictJsonError('DUPLICATE_MEMBER', `the member ${JSON.stringify(name.slice(0, 40))} appears more than once in $${path}`, { name, path: `$${path}` });
      }
      this.space();
      if (this.text[this.at] !== ':') this.fail('expected ":"');
      this.at++;
      this.space();
      this.path.push(name);
      const value = this.value(depth);
      this.path.pop();
      // As JSON.parse does: "__proto__" is an own data property, never the prototype.
      if (name === '__proto__') Object.defineProperty(result, name, { value, writable: true, enumerable: true, configurable: true });
      else result[name] = value;
      this.space();
      const next = this.text[this.at];
      if (next === ',') {
        this.at++;
        this.space();
      } else if (next === '}') {
        this.at++;
        return result;
      } else this.fail('expected "," or "}"');
    }
  }

  private array(depth: number): unknown[] {
    if (depth > MAX_DEPTH) throw new StrictJsonError('TOO_DEEP', `nested deeper than ${MAX_DEPTH} levels at position ${this.at}`);
    this.at++;
    const result: unknown[] = [];
    this.space();
    if (this.text[this.at] === ']') {
      this.at++;
      return result;
    }
    for (;;) {
      this.path.push(result.length);
      result.push(this.value(depth));
      this.path.pop();
      this.space();
      const next = this.text[this.at];
      if (next === ',') {
        this.at++;
        this.space();
      } else if (next === ']') {
        this.at++;
        return result;
      } else this.fail('expected "," or "]"');
    }
  }

  private string(): string {
    const text = this.text;
    let start = ++this.at;
    let out = '';
    for (;;) {
      // Runs without escapes are copied in one slice: the common case costs one scan.
      let at = start;
      let c = text.charCodeAt(at);
      while (c !== 0x22 && c !== 0x5c && c >= 0x20) c = text.charCodeAt(++at);
      if (at >= text.length) {
        this.at = at;
        this.fail('unterminated string');
      }
      out += text.slice(start, at);
      if (c === 0x22) {
        this.at = at + 1;
        return out;
      }
      if (c < 0x20) {
        this.at = at;
        this.fail('a control character in a string');
      }
      // A backslash.
      const e = text[at + 1];
      if (e === 'u') {
        const code = this.hex(at + 2);
        if (code >= 0xd800 && code <= 0xdbff) {
          const low = text[at + 6] === '\\' && text[at + 7] === 'u' ? this.hex(at + 8, true) : -1;
          if (low < 0xdc00 || low > 0xdfff) {
            this.at = at;
            throw new StrictJsonError('LONE_SURROGATE', `a lone surrogate \\u${text.slice(at + 2, at + 6)} at position ${at}`);
          }
          out += String.fromCharCode(code, low);
          start = at + 12;
        } else if (code >= 0xdc00 && code <= 0xdfff) {
          this.at = at;
          throw new StrictJsonError('LONE_SURROGATE', `a lone surrogate \\u${text.slice(at + 2, at + 6)} at position ${at}`);
        } else {
          out += String.fromCharCode(code);
          start = at + 6;
        }
      } else {
        const escaped = e === undefined ? undefined : ESCAPES[e];
        if (escaped === undefined) {
          this.at = at;
          this.fail('an invalid escape in a string');
        }
        out += escaped;
        start = at + 2;
      }
    }
  }

  /** Four hex digits at `at`; -1 instead of failing when `lenient` (a possible low surrogate). */
  private hex(at: number, lenient = false): number {
    const digits = this.text.slice(at, at + 4);
    if (!HEX4.test(digits)) {
      if (lenient) return -1;
      this.at = at;
      this.fail('an invalid \\u escape');
    }
    return parseInt(digits, 16);
  }

  private number(): number {
    NUMBER.lastIndex = this.at;
    const match = NUMBER.exec(this.text);
    if (!match) this.fail('an invalid number');
    this.at += match[0].length;
    return Number(match[0]);
  }

  private literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.at)) this.fail(`unexpected ${describe(this.text[this.at])}`);
    this.at += word.length;
    return value;
  }
}

function describe(c: string): string {
  return /^[\x21-\x7e]$/.test(c) ? `"${c}"` : `character U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
}

function firstLoneSurrogate(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
      else return i;
    } else if (c >= 0xdc00 && c <= 0xdfff) return i;
  }
  return -1;
}
