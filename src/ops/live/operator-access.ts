import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const OPS_SESSION_COOKIE = 'absher_ops_session';

/** Fixed, not configured: long enough for a shift, short enough that a lost cookie stops working the same day. */
export const OPS_SESSION_MS = 8 * 60 * 60 * 1000;

/** `<random id>.<expiry, ms since the epoch>.<HMAC of both>`, every part cookie-safe. */
const SESSION_FORMAT = /^([A-Za-z0-9_-]{22})\.([0-9]{1,15})\.([A-Za-z0-9_-]{43})$/;

/**
 * Who may open the live page: anyone when OPS_TOKEN is unset (the embedded
 * development defaults only; the configuration refuses that with a real
 * database), otherwise whoever presents the token, as `Authorization:
 * Bearer` or through the login form, which starts a session.
 *
 * A session is a signed token, not server state, so every instance behind
 * the balancer accepts it: a random id and an expiry (8 h), with an HMAC
 * keyed by a key derived from OPS_TOKEN (the token itself never leaves the
 * gateway). Signing out revokes the id in this instance's memory until it
 * expires; other instances still accept the cookie until then (the browser
 * drops it at once). Rotating OPS_TOKEN ends every session everywhere.
 */
export class OperatorAccess {
  private readonly token: Buffer | null;
  private readonly sessionKey: Buffer | null;
  /** Revoked session id → its expiry. Only a valid session can be revoked, and each is forgotten when it expires. */
  private readonly revoked = new Map<string, number>();
  readonly signIns: SignInThrottle;

  constructor(token: string | undefined, private readonly now: () => number = Date.now) {
    this.token = token ? Buffer.from(token) : null;
    // Derived, so a session's MAC is no oracle for the token and bearer tokens cannot be minted from it.
    this.sessionKey = token ? createHmac('sha256', token).update('absher-ops-session-key-v2').digest() : null;
    this.signIns = new SignInThrottle(now);
  }

  get open(): boolean {
    return this.token === null;
  }

  /** The token as typed into the login form. */
  accepts(candidate: string): boolean {
    // Digests compared, so neither the token's length nor its bytes leak through timing.
    return this.token !== null && equal(digest(Buffer.from(candidate)), digest(this.token));
  }

  allows(headers: { authorization?: string; cookie?: string }): boolean {
    if (this.open) return true;
    const bearer = /^Bearer (.+)$/i.exec(headers.authorization ?? '')?.[1];
    if (bearer !== undefined && this.accepts(bearer)) return true;
    return this.session(headers) !== null;
  }

  /** A new session (a new random id on every sign-in): the Set-Cookie value. */
  startSession(secure: boolean): string {
    const id = randomBytes(16).toString('base64url');
    const expiresAt = this.now() + OPS_SESSION_MS;
    return cookie(`${id}.${expiresAt}.${this.mac(id, expiresAt)}`, OPS_SESSION_MS / 1000, secure);
  }

  /** Revokes the session the request carries, if any (on this instance); returns the Set-Cookie value that clears it. */
  endSession(headers: { cookie?: string }, secure: boolean): string {
    const session = this.session(headers);
    if (session) {
      const now = this.now();
      for (const [id, expiresAt] of this.revoked) if (expiresAt <= now) this.revoked.delete(id);
      this.revoked.set(session.id, session.expiresAt);
    }
    return cookie('', 0, secure);
  }

  /** The request's session when its cookie is genuine, unexpired and not revoked here. */
  private session(headers: { cookie?: string }): { id: string; expiresAt: number } | null {
    if (this.sessionKey === null) return null;
    const value = (headers.cookie ?? '')
      .split(';')
      .map((part) => part.trim().split('='))
      .find(([name]) => name === OPS_SESSION_COOKIE)?.[1];
    const parts = SESSION_FORMAT.exec(value ?? '');
    if (!parts) return null;
    const [, id, expiry, mac] = parts;
    const expiresAt = Number(expiry);
    // Compared as text: decoding would let the unused low bits of the last character vary.
    if (!equal(Buffer.from(mac), Buffer.from(this.mac(id, expiresAt)))) return null;
    if (expiresAt <= this.now() || this.revoked.has(id)) return null;
    return { id, expiresAt };
  }

  private mac(id: string, expiresAt: number): string {
    return createHmac('sha256', this.sessionKey!).update(`ops-session.${id}.${expiresAt}`).digest('base64url');
  }
}

/**
 * Sign-in attempts per source address: after `limit` failures within a
 * window (from the first failure), further attempts are refused until the
 * window ends, right token or not. In memory, per instance, and bounded:
 * past `maxSources` addresses the oldest window is forgotten first.
 */
export class SignInThrottle {
  private readonly failures = new Map<string, { since: number; count: number }>();

  constructor(
    private readonly now: () => number = Date.now,
    readonly limit = 5,
    readonly windowMs = 60_000,
    readonly maxSources = 10_000,
  ) {}

  /** Seconds until this source may try again; 0 when it may now. */
  retryAfter(source: string): number {
    const entry = this.current(source);
    if (!entry || entry.count < this.limit) return 0;
    return Math.max(1, Math.ceil((entry.since + this.windowMs - this.now()) / 1000));
  }

  failed(source: string): void {
    const entry = this.current(source);
    if (entry) {
      entry.count++;
      return;
    }
    if (this.failures.size >= this.maxSources) this.makeRoom();
    this.failures.set(source, { since: this.now(), count: 1 });
  }

  /** The operator got it right: earlier typos no longer count. */
  succeeded(source: string): void {
    this.failures.delete(source);
  }

  get sources(): number {
    return this.failures.size;
  }

  private current(source: string): { since: number; count: number } | undefined {
    const entry = this.failures.get(source);
    if (entry && entry.since + this.windowMs <= this.now()) {
      this.failures.delete(source);
      return undefined;
    }
    return entry;
  }

  /** Entries are kept in order of their window's start: expired ones first, then the oldest. */
  private makeRoom(): void {
    const now = this.now();
    for (const [source, entry] of this.failures) {
      if (entry.since + this.windowMs > now) break;
      this.failures.delete(source);
    }
    if (this.failures.size >= this.maxSources) this.failures.delete(this.failures.keys().next().value!);
  }
}

function cookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return `${OPS_SESSION_COOKIE}=${value}; Path=/ops; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

function digest(value: Buffer): Buffer {
  return createHash('sha256').update(value).digest();
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
