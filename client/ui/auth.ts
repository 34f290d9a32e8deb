/**
 * Who is asking. Proxy mode believes identity headers only from configured proxy addresses; local mode signs a
 * session cookie for one of a fixed list of users. CSRF tokens are bound to a per-browser cookie and the identity.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { UiConfig } from '../../workflows/config';

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

const normaliseIp = (ip: string) => ip.replace(/^::ffff:/, '');

export class Authenticator {
  constructor(
    readonly auth: UiConfig['auth'] & { users: string[] },
    private readonly secret: Buffer = randomBytes(32),
  ) {}

  private mac(value: string): string {
    return createHmac('sha256', this.secret).update(value).digest('base64url');
  }

  private same(a: string, b: string): boolean {
    const x = Buffer.from(a);
    const y = Buffer.from(b);
    return x.length === y.length && timingSafeEqual(x, y);
  }

  identify(req: RequestLike): Identity | undefined {
    if (this.auth.mode === 'proxy') {
      // Headers from anyone but the proxy are ignored: a browser could send them too.
      if (!this.auth.trustedProxies.map(normaliseIp).includes(normaliseIp(req.ip))) return undefined;
      const header = (name: string) => {
        const v = req.headers[name.toLowerCase()];
        return Array.isArray(v) ? v[0] : v;
      };
      const user = header(this.auth.userHeader)?.trim();
      if (!user || !USER_RE.test(user)) return undefined;
      const groups = (header(this.auth.groupsHeader) ?? '')
        .split(',')
        .map((g) => g.trim())
        .filter((g) => GROUP_RE.test(g));
      return { user, groups };
    }
    const cookie = req.cookies[SESSION_COOKIE];
    if (!cookie) return undefined;
    const dot = cookie.lastIndexOf('.');
    const user = cookie.slice(0, dot);
    if (dot <= 0 || !this.same(cookie.slice(dot + 1), this.mac(`session|${user}`))) return undefined;
    return this.auth.users.includes(user) ? { user, groups: [] } : undefined;
  }

  /** Local mode: the cookie value that signs `user` in. */
  session(user: string): string {
    if (this.auth.mode !== 'local' || !this.auth.users.includes(user)) throw new Error(`unknown user ${user}`);
    return `${user}.${this.mac(`session|${user}`)}`;
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
    return typeof token === 'string' && Boolean(cookie) && this.same(token, this.csrfToken(cookie!, who));
  }
}
