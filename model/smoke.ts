/**
 * The smoke checks a deploy runs: slipway.yaml's deploy.smoke (durations as written, {service}/{namespace}
 * placeholders) and the plan the workflow carries (milliseconds, placeholders filled in).
 */
import { z } from 'zod';
import { durationSchema, parseDuration } from './duration';

/** An http(s) URL without credentials in it: smoke checks send none, and slipway.yaml holds no secret. */
const urlSchema = z
  .string()
  .max(2048)
  .regex(/^https?:\/\/[^\s]+$/, 'must be an http(s) URL')
  .refine((u) => !/^https?:\/\/[^/?#]*@/.test(u), 'must not carry a user or password (slipway.yaml holds no credentials; smoke checks send none)');

/** RFC 9110 §5.1: a field name is a token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 §5.5: visible ASCII, spaces and tabs inside; no control characters (no CR/LF: no header injection). */
const FIELD_VALUE = /^[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?$/;
/** A Host value (RFC 9110 §7.2): a DNS name or IPv4 address, optionally `:port`; placeholders count as a label. */
const HOST_VALUE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*(:\d{1,5})?$/;
/** Framing and connection headers belong to the HTTP client; a config that sets them breaks the request. */
const CLIENT_HEADERS = new Set(['connection', 'content-length', 'expect', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** Headers that carry credentials: none belongs in slipway.yaml (or in the release's history, which records the plan). */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);
const CREDENTIAL_NAME = /(^|[-_])(token|secret|password|passwd|api-?key|session|credentials?)($|[-_])/i;
export const MAX_SMOKE_HEADERS = 16;

const withoutPlaceholders = (v: string) => v.replaceAll('{service}', 'service').replaceAll('{namespace}', 'namespace');

/**
 * Why a smoke check's request header is refused (undefined: it is fine). Names are compared case-insensitively, as
 * HTTP does. `Host` is how a check goes through a router (Gateway) to one route's backends.
 */
export function smokeHeaderProblem(name: string, value: string): string | undefined {
  const lower = name.toLowerCase();
  if (!TOKEN.test(name)) return "name must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~; RFC 9110 §5.1)";
  if (name.length > 64) return 'name must be at most 64 characters';
  if (CREDENTIAL_HEADERS.has(lower) || CREDENTIAL_NAME.test(name)) return 'carries credentials: slipway.yaml holds no secrets, and smoke checks send none';
  if (CLIENT_HEADERS.has(lower)) return 'is set by the HTTP client (framing and connection headers cannot be configured)';
  if (value.length > 1024) return 'value must be at most 1024 characters';
  if (!FIELD_VALUE.test(value)) return 'value must be visible ASCII (spaces inside allowed), without control characters or line breaks (RFC 9110 §5.5)';
  if (lower === 'host' && !HOST_VALUE.test(withoutPlaceholders(value))) return 'value must be a host name or IPv4 address with an optional :port (e.g. delivery.example.test)';
  return undefined;
}

/** Request headers of an http check: each name and value checked, a name at most once (case-insensitively). */
const headersSchema = z.record(z.string(), z.string()).superRefine((headers, ctx) => {
  const names = Object.keys(headers);
  if (names.length > MAX_SMOKE_HEADERS) ctx.addIssue({ code: 'custom', message: `at most ${MAX_SMOKE_HEADERS} headers` });
  const seen = new Map<string, string>();
  for (const name of names) {
    const problem = smokeHeaderProblem(name, headers[name]);
    if (problem) ctx.addIssue({ code: 'custom', path: [name], message: problem });
    const twice = seen.get(name.toLowerCase());
    if (twice) ctx.addIssue({ code: 'custom', path: [name], message: `given twice (also as "${twice}"; header names are case-insensitive)` });
    seen.set(name.toLowerCase(), name);
  }
});

export const smokeConfigSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('rollout') }),
  z.strictObject({ type: z.literal('helm-test'), timeout: durationSchema.default('5m') }),
  z.strictObject({
    type: z.literal('http'),
    /**
     * {service} and {namespace} are filled in. A cluster service name (`<svc>.<ns>.svc[.cluster.local]`, the
     * default) is resolved by the worker through the cluster's API, as cluster DNS would; any other host is called
     * as written (e.g. a Gateway's address with `headers: { Host: <route hostname> }`).
     */
    url: urlSchema.default('http://{service}.{namespace}.svc/healthz'),
    /** Request headers, e.g. `Host` to reach one route through a router; validated, never credentials. */
    headers: headersSchema.optional(),
    expectStatus: z.number().int().min(100).max(599).default(200),
    timeout: durationSchema.default('30s'),
  }),
]);
export type SmokeConfig = z.infer<typeof smokeConfigSchema>;

/** A smoke check as the workflow carries it (durations in milliseconds, placeholders filled in). */
export const smokeCheckSchema = z.discriminatedUnion('type', [
  /** The Deployment's rollout is complete: every replica updated and available (Kubernetes API). */
  z.strictObject({ type: z.literal('rollout') }),
  /** The chart's Helm test hooks run and succeed. */
  z.strictObject({ type: z.literal('helm-test'), timeoutMs: z.number().int().positive() }),
  /**
   * An HTTP GET answers with the expected status: through the Service when the host is a cluster service name (every
   * ready endpoint, see activities/deploy/smoke.ts), otherwise at the URL as written, with the headers given.
   */
  z.strictObject({
    type: z.literal('http'),
    url: urlSchema.refine((u) => URL.canParse(u), 'must be a valid URL'),
    headers: headersSchema.optional(),
    expectStatus: z.number().int().min(100).max(599),
    timeoutMs: z.number().int().positive(),
  }),
]);
export type SmokeCheck = z.infer<typeof smokeCheckSchema>;

/** The plan of one configured check for a service deployed to a namespace. */
export function smokeCheckOf(c: SmokeConfig, service: string, namespace: string): SmokeCheck {
  if (c.type === 'rollout') return c;
  if (c.type === 'helm-test') return { type: c.type, timeoutMs: parseDuration(c.timeout)! };
  const fill = (text: string) => text.replaceAll('{service}', service).replaceAll('{namespace}', namespace);
  return {
    type: c.type,
    url: fill(c.url),
    ...(c.headers ? { headers: Object.fromEntries(Object.entries(c.headers).map(([k, v]) => [k, fill(v)])) } : {}),
    expectStatus: c.expectStatus,
    timeoutMs: parseDuration(c.timeout)!,
  };
}

/**
 * The Service a URL host names the way cluster DNS does (`<service>.<namespace>.svc`, optionally followed by
 * `.cluster.local`, case-insensitive, a trailing dot allowed); undefined for any other host. Only the default
 * cluster domain is known: a cluster with another domain is reached by the `.svc` form.
 */
export function clusterServiceOf(hostname: string): { service: string; namespace: string } | undefined {
  const label = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
  const m = new RegExp(`^(${label})\\.(${label})\\.svc(\\.cluster\\.local)?\\.?$`).exec(hostname.toLowerCase());
  return m ? { service: m[1], namespace: m[3] } : undefined;
}
