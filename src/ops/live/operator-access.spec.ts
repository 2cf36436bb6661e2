import { OPS_SESSION_COOKIE, OperatorAccess } from './operator-access';

const TOKEN = 'operator-token-0123456789';

describe('OperatorAccess', () => {
  it('lets everyone in when no token is configured (development defaults)', () => {
    const access = new OperatorAccess(undefined);
    expect(access.open).toBe(true);
    expect(access.allows({})).toBe(true);
    expect(access.accepts('')).toBe(false);
  });

  it('with a token: the bearer token or the session cookie, nothing else', () => {
    const access = new OperatorAccess(TOKEN);
    expect(access.allows({})).toBe(false);
    expect(access.allows({ authorization: `Bearer ${TOKEN}` })).toBe(true);
    expect(access.allows({ authorization: `Bearer ${TOKEN}x` })).toBe(false);
    expect(access.allows({ authorization: `Basic ${TOKEN}` })).toBe(false);
    const cookie = access.sessionCookie(false).split(';')[0];
    expect(cookie.startsWith(`${OPS_SESSION_COOKIE}=`)).toBe(true);
    expect(cookie).not.toContain(TOKEN); // an HMAC of the token, not the token
    expect(access.allows({ cookie: `theme=dark; ${cookie}` })).toBe(true);
    expect(access.allows({ cookie: `${OPS_SESSION_COOKIE}=${Buffer.from(TOKEN).toString('base64url')}` })).toBe(false);
    expect(access.allows({ cookie: `${OPS_SESSION_COOKIE}=` })).toBe(false);
    // A cookie made for another token does not open this gateway.
    expect(access.allows({ cookie: new OperatorAccess('another-token-0123456789').sessionCookie(false).split(';')[0] })).toBe(false);
  });

  it('the cookie is HttpOnly, SameSite=Strict, limited to /ops, and Secure behind TLS', () => {
    const access = new OperatorAccess(TOKEN);
    expect(access.sessionCookie(false)).toMatch(/; Path=\/ops; HttpOnly; SameSite=Strict; Max-Age=43200$/);
    expect(access.sessionCookie(true)).toMatch(/; Secure$/);
  });
});
