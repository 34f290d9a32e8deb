/**
 * Who is asking. Proxy mode believes identity headers only from configured proxy addresses; local mode signs a
 * session cookie for one of a fixed list of users, with its expiry inside the signed value. CSRF tokens are bound
 * to a per-browser cookie and the identity.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { UiConfig } from '../../model/config';
import type { SessionSecrets } from './session-secret';

export interface Identity {
  user: string;
  /** Groups vouched for by the proxy (proxy mode only); slipway.yaml's groups are applied by the workflow. */
  groups: string[];
}

export interface RequestLike {
  ip: string;
  headers: Record<string, string | string[] | undefined>;
  cookies: Record<string, string | undefined>;
}

export const SESSION_COOKIE = 'slipway_session';
export const CSRF_COOKIE = 'slipway_csrf';
const USER_RE = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;
const GROUP_RE = /^[a-z][a-z0-9-]{0,62}$/;
const NONCE_RE = /^[A-Za-z0-9_-]{12}$/;

const normaliseIp = (ip: string) => ip.replace(/^::ffff:/, '');

/** 127.0.0.0/8, ::1 and localhost: the only listen addresses (and peers) local sign-in mode accepts. */
export const isLoopback = (host: string | undefined): boolean => {
  const h = normaliseIp((host ?? '').replace(/^\[|\]$/g, ''));
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
};

export class Authenticator {
  private readonly keys: SessionSecrets;
  /** Signed-out sessions (nonce → expiry in s), so a copied cookie dies with the sign-out, not only at expiry. */
  private readonly revoked = new Map<string, number>();

  constructor(
    readonly auth: UiConfig['auth'] & { users: string[] },
    secrets: SessionSecrets | Buffer = randomBytes(32),
    readonly sessionMaxAgeMs = 8 * 3_600_000,
    private readonly now: () => number = Date.now,
  ) {
    this.keys = Buffer.isBuffer(secrets) ? { current: secrets } : secrets;
  }

  private mac(value: string, key = this.keys.current): string {
    return createHmac('sha256', key).update(value).digest('base64url');
  }

  private same(a: string, b: string): boolean {
    const x = Buffer.from(a);
    const y = Buffer.from(b);
    return x.length === y.length && timingSafeEqual(x, y);
  }

  /** The previous secret (kept for one session lifetime after a rotation) verifies, never signs. */
  private verifies(value: string, mac: string): boolean {
    return [this.keys.current, this.keys.previous].some((k) => k !== undefined && this.same(mac, this.mac(value, k)));
  }

  identify(req: RequestLike): Identity | undefined {
    return this.check(req).identity;
  }

  /** The identity, or why there is none (shown to the user and asserted by the bypass tests). */
  check(req: RequestLike): { identity?: Identity; reason: string } {
    if (this.auth.mode === 'proxy') {
      // Headers from anyone but the proxy are ignored: a browser could send them too.
      if (!this.auth.trustedProxies.map(normaliseIp).includes(normaliseIp(req.ip))) return { reason: `identity headers are believed only from the proxy, not from ${req.ip}` };
      const header = (name: string) => {
        const v = req.headers[name.toLowerCase()];
        return Array.isArray(v) ? v[0] : v;
      };
      const user = header(this.auth.userHeader)?.trim();
      if (!user) return { reason: `the proxy sent no ${this.auth.userHeader} header` };
      if (!USER_RE.test(user)) return { reason: `the proxy's ${this.auth.userHeader} header is not a user name` };
      const groups = (header(this.auth.groupsHeader) ?? '')
        .split(',')
        .map((g) => g.trim())
        .filter((g) => GROUP_RE.test(g));
      return { identity: { user, groups }, reason: '' };
    }
    const cookie = req.cookies[SESSION_COOKIE];
    if (!cookie) return { reason: 'not signed in' };
    // user.expires.nonce.mac — the user may contain dots, the other three parts cannot.
    const parts = cookie.split('.');
    if (parts.length < 4) return { reason: 'malformed session cookie' };
    const [mac, nonce, expires] = [parts.pop()!, parts.pop()!, parts.pop()!];
    const user = parts.join('.');
    if (!/^\d{1,12}$/.test(expires) || !NONCE_RE.test(nonce) || !this.verifies(`session|${user}|${expires}|${nonce}`, mac)) return { reason: 'session cookie signature invalid' };
    if (Number(expires) * 1000 <= this.now()) return { reason: 'session expired — sign in again' };
    if (this.revoked.has(nonce)) return { reason: 'session was signed out' };
    if (!this.auth.users.includes(user)) return { reason: `${user} is no longer a configured user` };
    return { identity: { user, groups: [] }, reason: '' };
  }

  /** Local mode: the cookie value that signs `user` in until now + the session max age. */
  session(user: string): string {
    if (this.auth.mode !== 'local' || !this.auth.users.includes(user)) throw new Error(`unknown user ${user}`);
    const expires = Math.floor((this.now() + this.sessionMaxAgeMs) / 1000);
    const nonce = randomBytes(9).toString('base64url');
    return `${user}.${expires}.${nonce}.${this.mac(`session|${user}|${expires}|${nonce}`)}`;
  }

  /** Sign-out: this session cookie stops working now (in this process; the expiry bounds it everywhere). */
  revoke(cookie: string | undefined): void {
    const parts = (cookie ?? '').split('.');
    if (parts.length < 4) return;
    const nowS = this.now() / 1000;
    for (const [n, exp] of this.revoked) if (exp <= nowS) this.revoked.delete(n);
    this.revoked.set(parts[parts.length - 2], Number(parts[parts.length - 3]));
  }

  newCsrfCookie(): string {
    return randomBytes(16).toString('base64url');
  }

  /** The token a form carries: bound to this browser's CSRF cookie and to who is signed in. */
  csrfToken(csrfCookie: string, who: string): string {
    return this.mac(`csrf|${csrfCookie}|${who}`);
  }

  checkCsrf(req: RequestLike, token: unknown, who: string): boolean {
    const cookie = req.cookies[CSRF_COOKIE];
    return typeof token === 'string' && Boolean(cookie) && this.verifies(`csrf|${cookie}|${who}`, token);
  }
}
