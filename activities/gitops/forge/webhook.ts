/**
 * Webhook authenticity, shared by the forge adapters. Gitea signs the body with HMAC-SHA256 (hex, X-Gitea-Signature),
 * GitHub the same with a `sha256=` prefix (X-Hub-Signature-256). Azure DevOps service hooks sign nothing: the
 * subscription sends HTTP basic auth (user and password set on the subscription), so that is what is checked.
 * Every comparison is constant-time over equal-length digests.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { gitopsError } from '../errors';

export const hmacSha256Hex = (secret: string, body: Buffer | string): string => createHmac('sha256', secret).update(body).digest('hex');

/** Compares through SHA-256 digests, so neither the length nor the content leaks through timing. */
export function constantTimeEqual(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** Header lookup that ignores case (Node lower-cases; recorded fixtures may not). */
export function header(headers: Record<string, string | undefined>, name: string): string | undefined {
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
  return key ? headers[key] : undefined;
}

export function requireSignature(repository: string, given: string | undefined, expected: string, what: string): void {
  if (!given) throw gitopsError('bad-signature', repository, `webhook without ${what}`);
  if (!constantTimeEqual(given.trim(), expected)) throw gitopsError('bad-signature', repository, `webhook ${what} does not match the body`);
}

export function parseJson(repository: string, body: Buffer | string): any {
  try {
    return JSON.parse(body.toString());
  } catch {
    throw gitopsError('rejected', repository, 'webhook body is not JSON');
  }
}
