import { generateKeyPairSync } from 'node:crypto';
import { CompactSign, importPKCS8 } from 'jose';
import { JwsError, parseDetachedJws, signDetached, verifyDetachedSignature } from './detached-jws';

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const header = { kid: 'k1', iat: 1_800_000_000, iss: 'DEVB', jti: 'r-1', htm: 'POST', htu: '/v1/activations' };
const body = Buffer.from('{"nationalId":"1000000008"}');

async function problemOf(run: () => unknown): Promise<string> {
  try {
    await run();
  } catch (error) {
    if (error instanceof JwsError) return error.problem;
    throw error;
  }
  return 'NONE';
}

describe('detached JWS', () => {
  it.each([
    ['ES256', ec],
    ['PS256', rsa],
  ] as const)('%s: what we sign verifies, and one changed body byte does not', async (alg, pair) => {
    const jws = parseDetachedJws(signDetached({ ...header, alg }, body, pair.privateKey));
    await expect(verifyDetachedSignature(jws, body, pair.publicKey)).resolves.toBeUndefined();
    const tampered = Buffer.from(body);
    tampered[5] ^= 1;
    expect(await problemOf(() => verifyDetachedSignature(jws, tampered, pair.publicKey))).toBe('SIGNATURE_MISMATCH');
  });

  it('verifies PS256 with an RSASSA-PSS key (rsa-pss KeyObject), which jose 6 on WebCrypto cannot import', async () => {
    const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
    const jws = parseDetachedJws(signDetached({ ...header, alg: 'PS256' }, body, pss.privateKey));
    await expect(verifyDetachedSignature(jws, body, pss.publicKey)).resolves.toBeUndefined();
    expect(await problemOf(() => verifyDetachedSignature(jws, Buffer.concat([body, Buffer.from(' ')]), pss.publicKey))).toBe('SIGNATURE_MISMATCH');
    const es256 = parseDetachedJws(signDetached({ ...header, alg: 'ES256' }, body, ec.privateKey));
    expect(await problemOf(() => verifyDetachedSignature(es256, body, pss.publicKey))).toBe('HEADER_INVALID');
  });

  it('verifies a signature made by jose (an independent implementation)', async () => {
    const key = await importPKCS8(ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 'ES256');
    const compact = await new CompactSign(body)
      .setProtectedHeader({ alg: 'ES256', ...header, crit: ['iat', 'iss', 'jti', 'htm', 'htu'] })
      .sign(key, { crit: { iat: true, iss: true, jti: true, htm: true, htu: true } });
    const [p, , s] = compact.split('.');
    await expect(verifyDetachedSignature(parseDetachedJws(`${p}..${s}`), body, ec.publicKey)).resolves.toBeUndefined();
  });

  it.each(['none', 'HS256', 'RS256', 'ES384', undefined])('refuses alg %s before any key is used', async (alg) => {
    const p = Buffer.from(JSON.stringify({ alg, ...header, crit: ['iat', 'iss', 'jti', 'htm', 'htu'] })).toString('base64url');
    expect(await problemOf(() => parseDetachedJws(`${p}..AAAA`))).toBe('ALGORITHM_NOT_ACCEPTED');
  });

  it.each([
    ['not three parts', 'abc'],
    ['attached payload', 'eyJhIjoxfQ.eyJhIjoxfQ.AAAA'],
    ['header not JSON', `${Buffer.from('{nope').toString('base64url')}..AAAA`],
    ['padding', 'eyJhIjoxfQ==..AAAA'],
  ])('refuses a malformed value: %s', async (_name, value) => {
    expect(await problemOf(() => parseDetachedJws(value))).toBe('MALFORMED');
  });

  it.each([
    ['crit missing a claim', { crit: ['iat', 'iss', 'jti', 'htm'] }],
    ['crit absent', { crit: undefined }],
    ['iat a string', { iat: '1800000000' }],
    ['kid absent', { kid: undefined }],
    ['b64 false', { b64: false }],
  ])('refuses a header with %s', async (_name, change) => {
    const h = { alg: 'ES256', ...header, crit: ['iat', 'iss', 'jti', 'htm', 'htu'], ...change };
    const p = Buffer.from(JSON.stringify(h)).toString('base64url');
    expect(await problemOf(() => parseDetachedJws(`${p}..AAAA`))).toBe('HEADER_INVALID');
  });

  it.each([
    ['alg', `{"alg":"ES256","kid":"k1","iat":1800000000,"iss":"DEVB","jti":"r-1","htm":"POST","htu":"/v1/activations","crit":["iat","iss","jti","htm","htu"],"alg":"none"}`],
    ['jti', `{"alg":"ES256","kid":"k1","iat":1800000000,"iss":"DEVB","jti":"r-1","jti":"r-2","htm":"POST","htu":"/v1/activations","crit":["iat","iss","jti","htm","htu"]}`],
  ])('refuses a protected header that repeats %s, naming it', async (name, json) => {
    const p = Buffer.from(json).toString('base64url');
    const error = await (async () => {
      try {
        parseDetachedJws(`${p}..AAAA`);
      } catch (e) {
        return e as JwsError;
      }
      throw new Error('accepted');
    })();
    expect(error).toBeInstanceOf(JwsError);
    expect(error.problem).toBe('HEADER_INVALID');
    expect(error.message).toContain(`"${name}"`);
  });

  it('a signature by another key is a mismatch', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jws = parseDetachedJws(signDetached({ ...header, alg: 'ES256' }, body, other.privateKey));
    expect(await problemOf(() => verifyDetachedSignature(jws, body, ec.publicKey))).toBe('SIGNATURE_MISMATCH');
  });
});
