/**
 * The edge's token exchange for CI: a pipeline presents its OIDC identity token (GitHub Actions, Azure Pipelines);
 * the UI verifies it against the configured issuer's keys, audience and lifetime, and signs a decision token for
 * that identity, bound to what the caller asked (release, run, environment, digest, action). The workflow checks
 * those bindings and the rules; this edge only vouches for who it is. The OIDC token itself never reaches Temporal.
 * jose (maintained, widely used) does the JWT and JWKS work: algorithms, key selection and claim checks are easy
 * to get subtly wrong by hand.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { formatIssues, type UiConfig } from '../../model/config';
import { normaliseIdentity } from '../../model/decision-token';
import { IDENTITY_RE, NAME_RE } from '../../model/rules';
import type { DecisionTokens } from '../identity/tokens';
import { RELEASE_ID_RE, RELEASE_ID_RULE } from '../../model/identifiers';


/** What a pipeline may ask to have signed: never who it is (that comes from its OIDC token). */
export const exchangeRequestSchema = z.strictObject({
  rel: z.string().regex(RELEASE_ID_RE, RELEASE_ID_RULE),
  act: z.enum(['start', 'approve', 'reject', 'abort', 'canary:promote', 'canary:skip', 'canary:rollback']),
  run: z.string().min(1).max(128).optional(),
  env: z.string().regex(NAME_RE, 'must be an environment name').optional(),
  dig: z.string().regex(/^(sha256:[a-f0-9]{64}|none)$/, 'must be sha256:<64 hex> or none').optional(),
  step: z.number().int().min(0).max(1000).optional(),
  note: z.string().max(2000).optional(),
  src: z.string().max(600).optional(),
});

type OidcIssuer = UiConfig['oidc'][number];

export function registerTokenExchange(app: FastifyInstance, opts: { issuers: OidcIssuer[]; tokens: DecisionTokens; log?: (line: string) => void }): void {
  const keys = new Map<string, JWTVerifyGetKey>(
    opts.issuers.map((i) => [i.issuer, i.jwksUrl ? createRemoteJWKSet(new URL(i.jwksUrl)) : createLocalJWKSet(JSON.parse(readFileSync(i.jwksFile!, 'utf8')))]),
  );
  const deny = (reason: string) => ({ ok: false, message: `Refused: ${reason}` });
  /** OIDC token ids already exchanged, until they expire: one CI token, one decision token. */
  const seen = new Map<string, number>();

  app.post('/api/decision-tokens', async (req, reply) => {
    const bearer = /^Bearer ([A-Za-z0-9._-]{1,8192})$/.exec(String(req.headers.authorization ?? ''));
    if (!bearer) return reply.code(401).send(deny('an OIDC identity token is required (Authorization: Bearer …)'));
    let iss: string | undefined;
    try {
      iss = decodeJwt(bearer[1]).iss;
    } catch {
      return reply.code(401).send(deny('the bearer token is not a JWT'));
    }
    const issuer = opts.issuers.find((i) => i.issuer === iss);
    if (!issuer) return reply.code(401).send(deny(`issuer ${String(iss).slice(0, 200)} is not trusted (ui.oidc)`));
    let claims: Record<string, unknown>;
    try {
      // Asymmetric algorithms only: an HS256 token "signed" with a public key must not pass.
      ({ payload: claims } = await jwtVerify(bearer[1], keys.get(issuer.issuer)!, { issuer: issuer.issuer, audience: issuer.audience, algorithms: ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'PS256', 'EdDSA'], clockTolerance: 30, requiredClaims: ['exp', 'iat'] }));
    } catch (err) {
      return reply.code(401).send(deny(`the OIDC token does not verify: ${(err as Error).message}`));
    }
    for (const [name, want] of Object.entries(issuer.requiredClaims)) {
      if (claims[name] !== want) return reply.code(401).send(deny(`claim ${name} must be ${want}`));
    }
    const rawSub = claims[issuer.subjectClaim];
    // The raw claim must already be a plain name: folding first would let "\u212Aate" become "kate".
    if (typeof rawSub !== 'string' || rawSub.length > 128 || !IDENTITY_RE.test(rawSub)) return reply.code(401).send(deny(`claim ${issuer.subjectClaim} does not name a user`));
    const sub = normaliseIdentity(rawSub);
    const now = Math.floor(Date.now() / 1000);
    for (const [id, exp] of seen) if (exp < now) seen.delete(id);
    const jti = typeof claims.jti === 'string' ? `${issuer.issuer}|${claims.jti}` : undefined;
    if (!jti) return reply.code(401).send(deny('the OIDC token has no jti: it could be replayed'));
    if (seen.has(jti)) return reply.code(401).send(deny('this OIDC token was already exchanged'));
    const rawGroups = issuer.groupsClaim ? claims[issuer.groupsClaim] : undefined;
    const groups = Array.isArray(rawGroups) ? rawGroups.filter((g): g is string => typeof g === 'string' && NAME_RE.test(g)).slice(0, 100) : [];
    const body = exchangeRequestSchema.safeParse(req.body);
    if (!body.success) return reply.code(400).send({ ok: false, message: `invalid request:\n${formatIssues(body.error)}` });
    seen.set(jti, Number(claims.exp));
    const token = await opts.tokens.token({ ...body.data, sub, ...(groups.length ? { groups } : {}) });
    opts.log?.(`token exchange: ${sub} (${issuer.issuer}) ${body.data.act} ${body.data.rel}`);
    return reply.send({ ok: true, token, sub });
  });
}
