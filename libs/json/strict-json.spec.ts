import fc from 'fast-check';
import { parseStrictJson, StrictJsonError } from './strict-json';

function errorOf(text: string): StrictJsonError {
  try {
    parseStrictJson(text);
  } catch (error) {
    if (error instanceof StrictJsonError) return error;
    throw error;
  }
  throw new Error(`accepted ${text}`);
}

/** JSON values without lone surrogates (fast-check's strings may hold them). */
const wellFormed = (s: string) => !/\p{Cs}/u.test(s);
const json = fc.jsonValue({ maxDepth: 6 }).filter((v) => wellFormed(JSON.stringify(v)));
/** JSON text with random whitespace between tokens, as banks' encoders may write it. */
const spaced = (value: unknown, indent: number) => JSON.stringify(value, null, indent);

describe('strict JSON', () => {
  it('reads what JSON.parse reads, when nothing is repeated', () => {
    fc.assert(
      fc.property(json, fc.integer({ min: 0, max: 3 }), (value, indent) => {
        const text = spaced(value, indent);
        expect(parseStrictJson(text)).toEqual(JSON.parse(text));
      }),
      { seed: 10, numRuns: 2000 },
    );
  });

  it('reads escapes, astral characters, numbers and literals exactly as JSON.parse', () => {
    for (const text of [
      '"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0000\\u00e9\\uD83D\\uDE00😀"',
      '[0,-0,1.5e3,-2E-2,1e400,123456789012345678901234567890,0.1]',
      '{"__proto__":{"x":1},"constructor":2,"toString":3}',
      ' \t\r\n{ "a" : [ true , false , null ] } \n',
      '"ج"',
    ]) {
      const mine = parseStrictJson(text);
      expect(mine).toEqual(JSON.parse(text));
      expect(Object.is((mine as unknown[])[1], (JSON.parse(text) as unknown[])[1])).toBe(true);
    }
    expect(Object.getPrototypeOf(parseStrictJson('{"__proto__":{"x":1}}'))).toBe(Object.prototype);
  });

  it('refuses what JSON.parse refuses', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), (text) => {
        let native = true;
        try {
          JSON.parse(text);
        } catch {
          native = false;
        }
        if (!native) expect(errorOf(text)).toBeInstanceOf(StrictJsonError);
      }),
      { seed: 11, numRuns: 5000 },
    );
    for (const text of ['', '{', '{"a":1,}', '[1,]', '01', '1.', '.5', '+1', '"\t"', "'a'", '{"a" 1}', 'nul', '"\\x"', '"\\u12"', '[1] [2]', 'NaN']) {
      expect(errorOf(text).problem).toBe('SYNTAX');
    }
  });

  it('finds any repeated member, at any depth, and names it with its place', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 8 }).filter(wellFormed), json, { minKeys: 1, maxKeys: 5 }),
        fc.nat(),
        json,
        fc.array(fc.constantFrom('[', 'o'), { maxLength: 4 }),
        (members, pick, second, wrappers) => {
          const entries = Object.entries(members).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
          const name = Object.keys(members)[pick % entries.length];
          entries.splice(pick % (entries.length + 1), 0, `${JSON.stringify(name)}:${JSON.stringify(second)}`);
          let text = `{${entries.join(',')}}`;
          let path = '$';
          for (const wrapper of wrappers) {
            text = wrapper === '[' ? `[1,${text}]` : `{"w":${text}}`;
            path = '';
          }
          const error = errorOf(text);
          expect(error.problem).toBe('DUPLICATE_MEMBER');
          expect(error.member?.name).toBe(name);
          if (path) expect(error.member?.path).toBe('$');
        },
      ),
      { seed: 12, numRuns: 2000 },
    );
    expect(errorOf('{"a":{"b":[{"c":1,"c":2}]}}').member).toEqual({ name: 'c', path: '$.a.b[0]' });
    expect(errorOf('{"nationalId":"1","mobile":"2","nationalId":"3"}').message).toBe('the member "nationalId" appears more than once in $');
  });

  it('counts names equal after unescaping as the same member', () => {
    expect(errorOf('{"a":1,"\\u0061":2}').member?.name).toBe('a');
    expect(errorOf('{"__proto__":1,"__proto__":2}').member?.name).toBe('__proto__');
  });

  it('refuses lone surrogates, escaped or raw, and keeps pairs', () => {
    for (const text of ['"\\ud800"', '"\\uD800x"', '"\\ud800\\u0041"', '"\\udc00"', '"\\ud800\\ud800"', '{"\\ud800":1}', '"\ud800"', '"a\udfff"']) {
      expect(errorOf(text).problem).toBe('LONE_SURROGATE');
    }
    expect(parseStrictJson('"\\ud83d\\ude00"')).toBe('😀');
  });

  it('reads any depth without using the call stack (16 KiB of brackets), as JSON.parse does', () => {
    const deep = `${'['.repeat(8000)}${']'.repeat(8000)}`;
    // Walked down by hand: Jest's deep equality and JSON.stringify recurse too deep here.
    let array = parseStrictJson(deep) as unknown[];
    for (let depth = 1; depth < 8000; depth++) array = array[0] as unknown[];
    expect(array).toEqual([]);
    let object = (parseStrictJson(`{"x":${'{"a":'.repeat(2500)}1${'}'.repeat(2500)}}`) as { x: unknown }).x;
    for (let depth = 0; depth < 2500; depth++) object = (object as { a: unknown }).a;
    expect(object).toBe(1);
    expect(errorOf('['.repeat(16_000)).problem).toBe('SYNTAX');
    expect(errorOf(`${'{"a":'.repeat(3000)}{"b":1,"b":2}${'}'.repeat(3000)}`).member?.path).toBe(`$${'.a'.repeat(3000)}`);
  });

  it('costs little next to JSON.parse (printed, not asserted)', () => {
    const body = JSON.stringify({ nationalId: '1000000008', mobile: '0512345678', channel: 'INTERNET_BANKING', customerReference: 'IB-2026-11-23-000417' });
    const time = (parse: (text: string) => unknown) => {
      for (let i = 0; i < 20_000; i++) parse(body);
      const start = process.hrtime.bigint();
      for (let i = 0; i < 200_000; i++) parse(body);
      return Number(process.hrtime.bigint() - start) / 200_000;
    };
    const native = time(JSON.parse);
    const strict = time(parseStrictJson);
    // eslint-disable-next-line no-console
    console.log(`activation body (${body.length} bytes): JSON.parse ${native.toFixed(0)} ns, parseStrictJson ${strict.toFixed(0)} ns per parse`);
  });
});
