/** Just enough cookie handling for the UI (a plugin would pull in an ESM-only parser that jest's VM cannot load). */
import type { FastifyReply, FastifyRequest } from 'fastify';

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const name = part.slice(0, i).trim();
    try {
      out[name] = decodeURIComponent(part.slice(i + 1).trim());
    } catch {
      /* a malformed value is ignored, as if absent */
    }
  }
  return out;
}

/** HttpOnly, SameSite=Strict, path / — the only kind of cookie the UI sets. Fastify appends repeated set-cookie. */
export function setCookie(reply: FastifyReply, name: string, value: string, maxAgeSeconds?: number): void {
  const attrs = [`${name}=${encodeURIComponent(value)}`, 'Path=/', 'HttpOnly', 'SameSite=Strict'];
  if (maxAgeSeconds !== undefined) attrs.push(`Max-Age=${maxAgeSeconds}`);
  reply.header('set-cookie', attrs.join('; '));
}

export function cookiesOf(req: FastifyRequest): Record<string, string | undefined> {
  const r = req as FastifyRequest & { cookies?: Record<string, string> };
  return (r.cookies ??= parseCookies(req.headers.cookie));
}
