import { OPS_SESSION_COOKIE, OPS_SESSION_MS, OperatorAccess, SignInThrottle } from './operator-access';

const TOKEN = 'operator-token-0123456789';

/** The cookie's name=value, as a browser sends it back. */
function sent(setCookie: string): string {
  return setCookie.split(';')[0];
}

function clock(start = Date.UTC(2026, 10, 27, 9, 0)): { now: () => number; advance(ms: number): void } {
  let now = start;
  return { now: () => now, advance: (ms) => (now += ms) };
}

describe('OperatorAccess', () => {
  it('lets everyone in when no token is configured (development defaults)', () => {
    const access = new OperatorAccess(undefined);
    expect(access.open).toBe(true);
    expect(access.allows({})).toBe(true);
    expect(access.accepts('')).toBe(false);
  });

  it('with a token: the bearer token or a session cookie, nothing else', () => {
    const access = new OperatorAccess(TOKEN);
    expect(access.allows({})).toBe(false);
    expect(access.allows({ authorization: `Bearer ${TOKEN}` })).toBe(true);
    expect(access.allows({ authorization: `Bearer ${TOKEN}x` })).toBe(false);
    expect(access.allows({ authorization: `Basic ${TOKEN}` })).toBe(false);
    const cookie = sent(access.startSession(false));
    expect(cookie.startsWith(`${OPS_SESSION_COOKIE}=`)).toBe(true);
    expect(cookie).not.toContain(TOKEN);
    expect(access.allows({ cookie: `theme=dark; ${cookie}` })).toBe(true);
    expect(access.allows({ cookie: `${OPS_SESSION_COOKIE}=${Buffer.from(TOKEN).toString('base64url')}` })).toBe(false);
    expect(access.allows({ cookie: `${OPS_SESSION_COOKIE}=` })).toBe(false);
    // A session made for another token does not open this gateway.
    expect(access.allows({ cookie: sent(new OperatorAccess('another-token-0123456789').startSession(false)) })).toBe(false);
  });

  it('two sign-ins give two different sessions, each accepted by any instance with the same token', () => {
    const access = new OperatorAccess(TOKEN);
    const [first, second] = [sent(access.startSession(false)), sent(access.startSession(false))];
    expect(first).not.toBe(second);
    const otherInstance = new OperatorAccess(TOKEN);
    expect(otherInstance.allows({ cookie: first })).toBe(true);
    expect(otherInstance.allows({ cookie: second })).toBe(true);
  });

  it('a session expires after 8 hours', () => {
    const time = clock();
    const access = new OperatorAccess(TOKEN, time.now);
    const cookie = sent(access.startSession(false));
    time.advance(OPS_SESSION_MS - 1);
    expect(access.allows({ cookie })).toBe(true);
    time.advance(1);
    expect(access.allows({ cookie })).toBe(false);
  });

  it('a tampered session is refused: a later expiry, another id, or a changed MAC', () => {
    const access = new OperatorAccess(TOKEN);
    const cookie = sent(access.startSession(false));
    const [id, expiry, mac] = cookie.slice(OPS_SESSION_COOKIE.length + 1).split('.');
    const forged = (value: string): boolean => access.allows({ cookie: `${OPS_SESSION_COOKIE}=${value}` });
    expect(forged(`${id}.${expiry}.${mac}`)).toBe(true);
    expect(forged(`${id}.${Number(expiry) + OPS_SESSION_MS}.${mac}`)).toBe(false);
    expect(forged(`${id.slice(0, -1)}${id.endsWith('A') ? 'B' : 'A'}.${expiry}.${mac}`)).toBe(false);
    expect(forged(`${mac.startsWith('A') ? 'B' : 'A'}${mac.slice(1)}`.replace(/^/, `${id}.${expiry}.`))).toBe(false);
    expect(forged(`${id}.${expiry}.${mac.slice(0, -1)}${mac.endsWith('A') ? 'B' : 'A'}`)).toBe(false); // even where only unused bits differ
    expect(forged(`${id}.${expiry}`)).toBe(false);
    expect(forged(`${id}.${expiry}.${mac}.x`)).toBe(false);
  });

  it('sign-out revokes that session (here) and clears the cookie; other sessions stay', () => {
    const access = new OperatorAccess(TOKEN);
    const [mine, colleague] = [sent(access.startSession(false)), sent(access.startSession(false))];
    const cleared = access.endSession({ cookie: mine }, false);
    expect(cleared).toBe(`${OPS_SESSION_COOKIE}=; Path=/ops; HttpOnly; SameSite=Strict; Max-Age=0`);
    expect(access.allows({ cookie: mine })).toBe(false);
    expect(access.allows({ cookie: colleague })).toBe(true);
    // Signing out without a session (or twice) only clears the cookie.
    expect(access.endSession({}, true)).toMatch(/Max-Age=0; Secure$/);
    expect(access.endSession({ cookie: mine }, false)).toBe(cleared);
  });

  it('revoked ids are forgotten once their session has expired anyway', () => {
    const time = clock();
    const access = new OperatorAccess(TOKEN, time.now);
    const old = sent(access.startSession(false));
    access.endSession({ cookie: old }, false);
    time.advance(OPS_SESSION_MS);
    const fresh = sent(access.startSession(false));
    access.endSession({ cookie: fresh }, false); // prunes the expired revocation
    expect((access as unknown as { revoked: Map<string, number> }).revoked.size).toBe(1);
    expect(access.allows({ cookie: old })).toBe(false);
  });

  it('the cookie is HttpOnly, SameSite=Strict, limited to /ops, 8 h, and Secure behind TLS', () => {
    const access = new OperatorAccess(TOKEN);
    expect(access.startSession(false)).toMatch(/; Path=\/ops; HttpOnly; SameSite=Strict; Max-Age=28800$/);
    expect(access.startSession(true)).toMatch(/; Max-Age=28800; Secure$/);
  });
});

describe('SignInThrottle', () => {
  it('refuses a source after 5 failures within a minute, for the rest of that minute', () => {
    const time = clock();
    const throttle = new SignInThrottle(time.now);
    for (let i = 0; i < 5; i++) {
      expect(throttle.retryAfter('10.0.0.1')).toBe(0);
      throttle.failed('10.0.0.1');
      time.advance(1_000);
    }
    expect(throttle.retryAfter('10.0.0.1')).toBe(55);
    expect(throttle.retryAfter('10.0.0.2')).toBe(0); // another source is not held up
    time.advance(54_500);
    expect(throttle.retryAfter('10.0.0.1')).toBe(1);
    time.advance(500);
    expect(throttle.retryAfter('10.0.0.1')).toBe(0); // the minute is over: counted afresh
    throttle.failed('10.0.0.1');
    expect(throttle.retryAfter('10.0.0.1')).toBe(0);
  });

  it('failures spread over more than a minute do not add up', () => {
    const time = clock();
    const throttle = new SignInThrottle(time.now);
    for (let i = 0; i < 4; i++) throttle.failed('10.0.0.1');
    time.advance(60_000);
    for (let i = 0; i < 4; i++) throttle.failed('10.0.0.1');
    expect(throttle.retryAfter('10.0.0.1')).toBe(0);
  });

  it('a successful sign-in resets the count', () => {
    const throttle = new SignInThrottle();
    for (let i = 0; i < 4; i++) throttle.failed('10.0.0.1');
    throttle.succeeded('10.0.0.1');
    for (let i = 0; i < 4; i++) throttle.failed('10.0.0.1');
    expect(throttle.retryAfter('10.0.0.1')).toBe(0);
    throttle.failed('10.0.0.1');
    expect(throttle.retryAfter('10.0.0.1')).toBeGreaterThan(0);
  });

  it('keeps at most maxSources addresses: expired windows go first, then the oldest', () => {
    const time = clock();
    const throttle = new SignInThrottle(time.now, 5, 60_000, 3);
    throttle.failed('a');
    time.advance(60_000);
    for (const source of ['b', 'c', 'd']) throttle.failed(source); // 'a' has expired: it makes room
    expect(throttle.sources).toBe(3);
    for (let i = 0; i < 4; i++) throttle.failed('d');
    throttle.failed('e'); // full of live windows: the oldest ('b') is forgotten
    expect(throttle.sources).toBe(3);
    expect(throttle.retryAfter('d')).toBe(60);
  });
});
