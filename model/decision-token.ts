/**
 * Signed decision tokens: who decided what, for which release, run, environment and digest — issued by an edge that
 * authenticated the person (the UI, the CLI's local key, a CI token exchange) and verified here with pure,
 * deterministic code against public keys pinned into the release's history at start. Namespace access alone can
 * therefore neither approve nor assert an identity, and an accepted token stays in the history as a verifiable record.
 *
 * Format: JWS compact serialisation, `alg: EdDSA` (Ed25519), `kid` = issuer name — any JOSE library can check one.
 * Workflow-safe: no Node built-ins; @noble/curves is pure JS (audited) and verification draws no randomness.
 */
import { ed25519 } from '@noble/curves/ed25519';
import { IDENTITY_RE } from './rules';

export type DecisionAction = 'start' | 'approve' | 'reject' | 'abort' | 'canary:promote' | 'canary:skip' | 'canary:rollback';

/** How the edge authenticated the person: `local` is self-asserted (the local stack's CLI key). */
export type AuthMethod = 'local' | 'session' | 'proxy' | 'oidc';

export interface DecisionClaims {
  /** Issuer: the name of the edge, pinned with its public key. */
  iss: string;
  /** The person, normalised (see normaliseIdentity). */
  sub: string;
  /** Groups the edge vouches for (proxy headers, OIDC claims). */
  groups?: string[];
  amr: AuthMethod;
  /** Release (workflow) id. */
  rel: string;
  /** Run id: absent only for `start`, which precedes the run. */
  run?: string;
  env?: string;
  /** The image digest decided on; `none` for an abort before anything was pushed. */
  dig?: string;
  act: DecisionAction;
  /** Canary actions: the step they were sent for. */
  step?: number;
  /** Start: what is released — `image:<ref>`, `git:<sha>` or `checkout` — so a start token cannot start another build. */
  src?: string;
  /** The comment or reason, signed with the decision so nobody can change it in transit. */
  note?: string;
  /** Issued at / expires, seconds since the epoch. */
  iat: number;
  exp: number;
  /** Nonce: each token is accepted once per release. */
  jti: string;
}

/** A public key the workflow trusts, as pinned from the workers' configuration at start. */
export interface TrustedIssuer {
  name: string;
  /** base64 of the 32 raw Ed25519 public key bytes. */
  publicKey: string;
  /** Tokens from this issuer assert an identity nobody checked (the local stack). */
  selfAsserted: boolean;
}

export interface TrustAnchors {
  issuers: TrustedIssuer[];
  /** The longest lifetime a token may claim. */
  maxTtlSeconds: number;
}

export interface Expected {
  act: DecisionAction;
  rel: string;
  run?: string;
  env?: string;
  dig?: string;
  step?: number;
  src?: string;
}

const MAX_TOKEN = 8192;

// Every cached workflow holds its own copy of module state: noble's default base-point table (window 8) costs
// ~1.2 MB each, window 4 ~0.27 MB at the same verify time (~17 ms; measured with node --expose-gc, 1.9.7).
ed25519.Point.BASE.precompute(4, true);
const CLOCK_SKEW_S = 60;

/** What a start releases, as its token names it: an existing image, a commit, or the builder's checkout. */
export const startSource = (req: { image?: string; gitSha?: string }): string => (req.image ? `image:${req.image}` : req.gitSha ? `git:${req.gitSha}` : 'checkout');

/** Trim and lower-case: `Bob `, `bob` and `BOB` are one person everywhere identities are compared or stored. */
export function normaliseIdentity(raw: string): string {
  return raw.normalize('NFC').trim().toLowerCase();
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX: Record<string, number> = Object.fromEntries([...B64].map((c, i) => [c, i]));

/** base64 or base64url (padding optional) → bytes; undefined when the text is not base64. */
export function decodeBase64(text: string): Uint8Array | undefined {
  const s = text.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(s) || s.length % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let n = 0;
  for (const c of s) {
    acc = (acc << 6) | B64_INDEX[c];
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

const utf8 = (bytes: Uint8Array): string => new TextDecoder('utf-8', { fatal: true }).decode(bytes);

function parseJson(part: string): Record<string, unknown> | undefined {
  const bytes = decodeBase64(part);
  if (!bytes) return undefined;
  try {
    const v = JSON.parse(utf8(bytes));
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const isStr = (v: unknown, max = 256): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;
const ACTIONS: DecisionAction[] = ['start', 'approve', 'reject', 'abort', 'canary:promote', 'canary:skip', 'canary:rollback'];
const METHODS: AuthMethod[] = ['local', 'session', 'proxy', 'oidc'];

/** The claims of a token whose shape is right, without checking its signature (for the Update handlers, after the validator). */
export function readClaims(token: unknown): DecisionClaims | undefined {
  if (typeof token !== 'string' || token.length > MAX_TOKEN) return undefined;
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const c = parseJson(parts[1]);
  if (!c) return undefined;
  const okShape =
    isStr(c.iss, 64) &&
    isStr(c.sub, 128) &&
    IDENTITY_RE.test(c.sub) &&
    c.sub === normaliseIdentity(c.sub) &&
    (c.groups === undefined || (Array.isArray(c.groups) && c.groups.length <= 100 && c.groups.every((g) => isStr(g, 63)))) &&
    METHODS.includes(c.amr as AuthMethod) &&
    isStr(c.rel, 256) &&
    (c.run === undefined || isStr(c.run, 128)) &&
    (c.env === undefined || isStr(c.env, 63)) &&
    (c.dig === undefined || isStr(c.dig, 80)) &&
    ACTIONS.includes(c.act as DecisionAction) &&
    (c.step === undefined || (Number.isInteger(c.step) && (c.step as number) >= 0)) &&
    (c.note === undefined || (typeof c.note === 'string' && c.note.length <= 2000)) &&
    (c.src === undefined || isStr(c.src, 600)) &&
    // Seconds since the epoch, within what a Date can hold (a larger number would throw when printed).
    Number.isInteger(c.iat) &&
    Number.isInteger(c.exp) &&
    Math.abs(c.iat as number) < 1e11 &&
    Math.abs(c.exp as number) < 1e11 &&
    isStr(c.jti, 128);
  return okShape ? (c as unknown as DecisionClaims) : undefined;
}

export type Verified = { ok: true; claims: DecisionClaims; issuer: TrustedIssuer } | { ok: false; reason: string };

/**
 * Checks a decision token: signature by a pinned issuer, then every binding (action, release, run, environment,
 * digest, canary step), lifetime and single use. `nowMs` is workflow time, so the result is deterministic.
 */
export function verifyDecisionToken(token: unknown, trust: TrustAnchors, expect: Expected, nowMs: number, used: ReadonlySet<string>): Verified {
  if (token === undefined || token === null || token === '') return { ok: false, reason: 'token: a signed decision token is required (from the approvals UI, the CLI\'s local key on the local stack, or a CI token exchange)' };
  if (typeof token !== 'string' || token.length > MAX_TOKEN) return { ok: false, reason: 'token: must be a compact JWS of at most 8192 characters' };
  const parts = token.split('.');
  if (parts.length !== 3) return { ok: false, reason: 'token: must be a compact JWS (header.payload.signature)' };
  const header = parseJson(parts[0]);
  if (!header || header.alg !== 'EdDSA' || typeof header.kid !== 'string') return { ok: false, reason: 'token: header must name alg EdDSA and the issuer as kid' };
  const issuer = trust.issuers.find((i) => i.name === header.kid);
  if (!issuer) return { ok: false, reason: `token: issuer "${String(header.kid).slice(0, 64)}" is not trusted by this release (trusted: ${trust.issuers.map((i) => i.name).join(', ') || 'none'})` };
  const sig = decodeBase64(parts[2]);
  const key = decodeBase64(issuer.publicKey);
  let valid = false;
  try {
    valid = Boolean(sig && key && sig.length === 64 && key.length === 32 && ed25519.verify(sig, new TextEncoder().encode(`${parts[0]}.${parts[1]}`), key, { zip215: false }));
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, reason: `token: signature does not verify with ${issuer.name}'s pinned key` };
  const c = readClaims(token);
  if (!c) return { ok: false, reason: 'token: claims are malformed (iss, sub, amr, rel, act, iat, exp, jti required; sub normalised)' };
  if (c.iss !== issuer.name) return { ok: false, reason: `token: iss "${c.iss}" differs from its key id "${issuer.name}"` };
  // A self-asserting key cannot claim that anybody authenticated the person.
  if (issuer.selfAsserted && c.amr !== 'local') return { ok: false, reason: `token: ${issuer.name} asserts identities itself; its tokens must say amr "local", not "${c.amr}"` };
  if (c.act !== expect.act) return { ok: false, reason: `token: issued for "${c.act}", not "${expect.act}"` };
  if (c.rel !== expect.rel) return { ok: false, reason: `token: issued for release ${c.rel}, not ${expect.rel}` };
  if (expect.run !== undefined && c.run !== expect.run) return { ok: false, reason: `token: issued for run ${c.run ?? '(none)'}, not the running ${expect.run}` };
  if (expect.env !== undefined && c.env !== expect.env) return { ok: false, reason: `token: issued for environment "${c.env ?? '(none)'}", not "${expect.env}"` };
  if (expect.dig !== undefined && c.dig !== expect.dig) return { ok: false, reason: `token: issued for digest ${c.dig ?? '(none)'}, the release is ${expect.dig}` };
  if (expect.step !== undefined && c.step !== expect.step) return { ok: false, reason: `token: issued for canary step ${c.step ?? '(none)'}, the canary is at step ${expect.step}` };
  if (expect.src !== undefined && c.src !== expect.src) return { ok: false, reason: `token: issued to release ${c.src ?? '(unnamed source)'}, the request releases ${expect.src}` };
  const now = Math.floor(nowMs / 1000);
  if (c.iat > now + CLOCK_SKEW_S) return { ok: false, reason: 'token: issued in the future' };
  if (c.exp <= now) return { ok: false, reason: `token: expired at ${new Date(c.exp * 1000).toISOString()}` };
  if (c.exp - c.iat > trust.maxTtlSeconds) return { ok: false, reason: `token: lifetime ${c.exp - c.iat} s exceeds the ${trust.maxTtlSeconds} s allowed` };
  if (used.has(c.jti)) return { ok: false, reason: 'token: already used (each decision token is accepted once)' };
  return { ok: true, claims: c, issuer };
}
