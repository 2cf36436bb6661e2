/**
 * JSON (RFC 8259) read strictly, in one pass: the value JSON.parse would
 * give, or a StrictJsonError. Stricter than JSON.parse in two ways that
 * matter for signed messages (spec 3.3): an object that repeats a member
 * name is refused (JSON.parse keeps the last, other readers the first, so
 * one signed body would have two meanings), and so is a string holding a
 * lone surrogate, raw or escaped (JSON.parse keeps it; stored as UTF-8 it
 * becomes U+FFFD, which is not what was signed).
 *
 * Cost, measured on Node 20 outside Jest for the 121-byte activation body:
 * about 2.3 µs a parse against JSON.parse's 1.0 µs, a small part of one
 * signature verification (strict-json.spec.ts prints the figure each run).
 */
export type StrictJsonProblem = 'SYNTAX' | 'DUPLICATE_MEMBER' | 'LONE_SURROGATE';

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

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
const HEX4 = /^[0-9a-fA-F]{4}$/;
const LONE_SURROGATE = /\p{Cs}/u;

export function parseStrictJson(text: string): unknown {
  // One native scan (in unicode mode \p{Cs} matches only unpaired surrogates); after it, only \u escapes can make one.
  if (LONE_SURROGATE.test(text)) throw new StrictJsonError('LONE_SURROGATE', `a lone surrogate at position ${firstLoneSurrogate(text)}`);
  return new Reader(text).document();
}

/** An object or array being read, and (objects) the member whose value comes next. */
interface Open {
  readonly container: Record<string, unknown> | unknown[];
  readonly array: boolean;
  key: string;
}

class Reader {
  at = 0;
  /**
   * Open objects and arrays, on the heap rather than the call stack: no depth
   * limit beyond the input's length (JSON.parse has none either, and a 16 KiB
   * body of brackets must be refused for what it is, not by a stack overflow).
   */
  private readonly open: Open[] = [];
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

  document(): unknown {
    const text = this.text;
    const open = this.open;
    this.space();
    for (;;) {
      // A value starts here: a scalar, an empty container, or the first member or element of one.
      let value: unknown;
      const c = text[this.at];
      if (c === '{' || c === '[') {
        const array = c === '[';
        this.at++;
        this.space();
        if (text[this.at] === (array ? ']' : '}')) {
          this.at++;
          value = array ? [] : {};
        } else {
          const container = array ? [] : {};
          open.push({ container, array, key: '' });
          if (!array) open[open.length - 1].key = this.memberName(container as Record<string, unknown>);
          continue;
        }
      } else value = this.scalar(c);
      // The value is complete: store it in its container, and close every container that ends here.
      for (;;) {
        const top = open[open.length - 1];
        if (top === undefined) {
          this.space();
          if (this.at < text.length) this.fail(`unexpected ${describe(text[this.at])} after the value`);
          return value;
        }
        if (top.array) (top.container as unknown[]).push(value);
        // As JSON.parse does: "__proto__" is an own data property, never the prototype.
        else if (top.key === '__proto__') Object.defineProperty(top.container, top.key, { value, writable: true, enumerable: true, configurable: true });
        else (top.container as Record<string, unknown>)[top.key] = value;
        this.space();
        const next = text[this.at];
        if (next === ',') {
          this.at++;
          this.space();
          if (!top.array) top.key = this.memberName(top.container as Record<string, unknown>);
          break;
        }
        if (next !== (top.array ? ']' : '}')) this.fail(top.array ? 'expected "," or "]"' : 'expected "," or "}"');
        this.at++;
        value = top.container;
        open.pop();
      }
    }
  }

  /** A member name and its ":"; refused when the object already has it. */
  private memberName(object: Record<string, unknown>): string {
    if (this.text[this.at] !== '"') this.fail('expected a member name in double quotes');
    const name = this.string();
    // Own properties only: "constructor" or "toString" are ordinary names here.
    if (Object.prototype.hasOwnProperty.call(object, name)) {
      const path = `$${this.open
        .slice(0, -1)
        .map((step) => (step.array ? `[${(step.container as unknown[]).length}]` : `.${step.key.slice(0, 40)}`))
        .join('')}`;
      throw new StrictJsonError('DUPLICATE_MEMBER', `the member ${JSON.stringify(name.slice(0, 40))} appears more than once in ${path}`, { name, path });
    }
    this.space();
    if (this.text[this.at] !== ':') this.fail('expected ":"');
    this.at++;
    this.space();
    return name;
  }

  private scalar(c: string | undefined): unknown {
    switch (c) {
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      default:
        if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return this.number();
        return this.fail(c === undefined ? 'unexpected end of input' : `unexpected ${describe(c)}`);
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
