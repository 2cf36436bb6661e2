import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export const OPS_SESSION_COOKIE = 'absher_ops_session';

/**
 * Who may open the live page: anyone when OPS_TOKEN is unset (the embedded
 * development defaults only; the configuration refuses that with a real
 * database), otherwise whoever presents the token, as `Authorization:
 * Bearer` or through the login form, which sets a cookie. The cookie holds
 * an HMAC of the token, not the token, and compares in constant time.
 */
export class OperatorAccess {
  private readonly session: Buffer | null;
  private readonly token: Buffer | null;

  constructor(token: string | undefined) {
    this.token = token ? Buffer.from(token) : null;
    this.session = token ? createHmac('sha256', token).update('absher-ops-session-v1').digest() : null;
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
    const cookie = (headers.cookie ?? '').split(';').map((part) => part.trim().split('=')).find(([name]) => name === OPS_SESSION_COOKIE)?.[1];
    return cookie !== undefined && equal(Buffer.from(cookie, 'base64url'), this.session!);
  }

  sessionCookie(secure: boolean): string {
    return `${OPS_SESSION_COOKIE}=${this.session!.toString('base64url')}; Path=/ops; HttpOnly; SameSite=Strict; Max-Age=43200${secure ? '; Secure' : ''}`;
  }
}

function digest(value: Buffer): Buffer {
  return createHash('sha256').update(value).digest();
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
