/**
 * The one HTTP helper the forge adapters share: JSON in and out, a bounded timeout, the forge's auth header, and
 * every non-2xx the caller did not ask to see turned into a gitops failure naming the repository, the request and
 * the forge's own message (never the token: it is only in a header, and headers are not reported).
 */
import { gitopsError, httpFailure, networkFailure } from '../errors';

export interface ForgeHttpOptions {
  /** API root, without a trailing slash: https://api.github.com, http://127.0.0.1:19300/api/v1, … */
  baseUrl: string;
  /** The repository as errors name it (the clone URL). */
  repository: string;
  headers: Record<string, string>;
  /** Appended to every query (Azure's api-version). */
  query?: Record<string, string>;
  timeoutMs?: number;
}

export interface ForgeResponse<T = any> {
  status: number;
  body: T;
}

export class ForgeHttp {
  constructor(private readonly opts: ForgeHttpOptions) {}

  /** `accept` lists the non-2xx statuses the caller handles itself (a 404 that means "none yet"). */
  async request<T = any>(method: string, path: string, opts: { body?: unknown; query?: Record<string, string | number | undefined>; accept?: number[] } = {}): Promise<ForgeResponse<T>> {
    const url = new URL(`${this.opts.baseUrl}${path}`);
    for (const [k, v] of Object.entries({ ...opts.query, ...this.opts.query })) if (v !== undefined) url.searchParams.set(k, String(v));
    const what = `${method} ${url.pathname}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: { accept: 'application/json', ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...this.opts.headers },
        body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
        redirect: 'error',
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
      });
    } catch (err) {
      if ((err as Error)?.name === 'TimeoutError') throw gitopsError('unreachable', this.opts.repository, `${what}: no answer within ${this.opts.timeoutMs ?? 30_000} ms`);
      throw networkFailure(err, this.opts.repository, what);
    }
    const text = await res.text();
    let body: any = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON: keep the text for the message */
    }
    // Azure DevOps answers an unauthenticated API call with 203 and its HTML sign-in page, not a 401.
    if (res.status === 203 || (res.ok && typeof body === 'string' && /text\/html/.test(res.headers.get('content-type') ?? ''))) {
      throw gitopsError('auth', this.opts.repository, `${what}: HTTP ${res.status} with a sign-in page (the token was not accepted)`, { status: res.status });
    }
    if (res.ok || opts.accept?.includes(res.status)) return { status: res.status, body };
    throw gitopsError(httpFailure(res.status), this.opts.repository, `${what}: HTTP ${res.status}${forgeMessage(body) ? ` (${forgeMessage(body)})` : ''}`, { status: res.status });
  }
}

/** The forge's own error text: GitHub/Gitea `message` (+ errors[].message), Azure `message` or `error.message`. */
export function forgeMessage(body: unknown): string {
  if (typeof body === 'string') return body.trim().slice(0, 300);
  const b = body as { message?: string; error?: { message?: string }; errors?: { message?: string }[] } | undefined;
  const parts = [b?.message ?? b?.error?.message, ...(b?.errors ?? []).map((e) => e?.message)].filter(Boolean);
  return parts.join('; ').slice(0, 300);
}
