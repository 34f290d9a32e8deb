/**
 * CI identity: a pipeline's OIDC token (here from a test issuer of our own — GitHub's and Azure's cannot be reached
 * from this machine) is exchanged at the UI's edge for a decision token, and only a token that verifies (issuer,
 * key, audience, lifetime, asymmetric algorithm) is. Rows of the bypass matrix for the CLI/CI door; a real release
 * (mocked activities) is approved with an exchanged token, and the status records the OIDC identity.
 */
import type { FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type KeyLike } from 'jose';
import { noopActivities } from '../../bench/noop-worker';
import { parseConfig } from '../../model/plan';
import { ExchangeTokens } from '../../client/identity/exchange';
import { buildUiServer } from '../../client/ui/server';
import { plan, sampleConfigText, startHarness, uniqueVersion, type Harness } from '../helpers';

const NS = 'slipway-test';
const DIGEST = `sha256:${'7'.repeat(64)}`;
const ISSUER = 'https://token.actions.example.test';
let harness: Harness;
let app: FastifyInstance;
let url: string;
let dir: string;
let key: KeyLike;
let strangerKey: KeyLike;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'slipway-oidc-'));
  const pair = await generateKeyPair('ES256');
  key = pair.privateKey;
  strangerKey = (await generateKeyPair('ES256')).privateKey;
  const publicKey = pair.publicKey;
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
  const config = `${sampleConfigText()}\nui: { auth: { mode: local, users: [alice] }, oidc: [ { issuer: "${ISSUER}", audience: slipway, jwksFile: "${join(dir, 'jwks.json')}", subjectClaim: actor, requiredClaims: { repository_owner: acme } } ] }\n`;
  harness = await startHarness(NS, noopActivities(DIGEST, 'oidc-host'), 'oidc-host');
  app = await buildUiServer({ slipway: harness.slipway, config: parseConfig(config), namespace: NS, secret: Buffer.alloc(32, 7) });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app.close();
  await harness.stop();
  rmSync(dir, { recursive: true, force: true });
});

const oidc = (o: { actor?: string; aud?: string; iss?: string; exp?: string | number; key?: KeyLike; alg?: string; kid?: string; owner?: string; jti?: string | null } = {}) =>
  new SignJWT({ actor: o.actor ?? 'alice', repository: 'acme/delivery', repository_owner: o.owner ?? 'acme', ...(o.jti === null ? {} : { jti: o.jti ?? randomUUID() }) })
    .setProtectedHeader({ alg: o.alg ?? 'ES256', kid: o.kid ?? 'k1' })
    .setIssuer(o.iss ?? ISSUER)
    .setAudience(o.aud ?? 'slipway')
    .setSubject('repo:acme/delivery:ref:refs/heads/main')
    .setIssuedAt()
    .setExpirationTime(o.exp ?? '5m')
    .sign(o.key ?? key);

const exchange = (bearer: string | undefined, body: object = { rel: 'release:delivery:v1.0.0', act: 'start' }) =>
  fetch(`${url}/api/decision-tokens`, { method: 'POST', headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) }, body: JSON.stringify(body) });

const rows: { rule: string; bearer: () => Promise<string | undefined>; body?: object; status: number; reason: RegExp }[] = [
  { rule: 'an OIDC token is required', bearer: async () => undefined, status: 401, reason: /Bearer/ },
  { rule: 'the bearer must be a JWT', bearer: async () => 'not-a-jwt', status: 401, reason: /not a JWT/ },
  { rule: 'only configured issuers', bearer: () => oidc({ iss: 'https://evil.example.test' }), status: 401, reason: /not trusted/ },
  { rule: 'the issuer\'s own key', bearer: () => oidc({ key: strangerKey }), status: 401, reason: /does not verify/ },
  { rule: 'the audience must be slipway\'s', bearer: () => oidc({ aud: 'someone-else' }), status: 401, reason: /aud/ },
  { rule: 'expired tokens are refused', bearer: () => oidc({ exp: Math.floor(Date.now() / 1000) - 120 }), status: 401, reason: /exp/ },
  { rule: 'alg none is refused', bearer: async () => `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISSUER, aud: 'slipway', actor: 'alice', exp: 9e9, iat: 1 })).toString('base64url')}.`, status: 401, reason: /does not verify/ },
  { rule: 'the subject claim must name a user', bearer: () => oidc({ actor: 'alice bob <x>' }), status: 401, reason: /does not name a user/ },
  { rule: 'the pinned claims must match (another organisation\'s pipeline)', bearer: () => oidc({ owner: 'someone-else' }), status: 401, reason: /repository_owner must be acme/ },
  { rule: 'a token without jti could be replayed', bearer: () => oidc({ jti: null }), status: 401, reason: /no jti/ },
  { rule: 'a subject that only folds into a user name', bearer: () => oidc({ actor: '\u212Aate' }), status: 401, reason: /does not name a user/ },
  { rule: 'the caller cannot choose who it is', bearer: () => oidc(), body: { rel: 'release:delivery:v1.0.0', act: 'approve', sub: 'carol' }, status: 400, reason: /sub/ },
  { rule: 'requests are validated', bearer: () => oidc(), body: { rel: 'release:../../etc', act: 'approve' }, status: 400, reason: /rel/ },
];

test.each(rows)('refused: $rule', async ({ bearer, body, status, reason }) => {
  const res = await exchange(await bearer(), body);
  expect(res.status).toBe(status);
  expect(((await res.json()) as { message: string }).message).toMatch(reason);
});

test('refused: an OIDC token is exchanged once', async () => {
  const bearer = await oidc();
  expect((await exchange(bearer)).status).toBe(200);
  const again = await exchange(bearer);
  expect(again.status).toBe(401);
  expect(((await again.json()) as { message: string }).message).toMatch(/already exchanged/);
});

test('a pipeline starts and approves with exchanged tokens; the status records who, verified how', async () => {
  // A fresh OIDC token for each exchange, as GitHub's token service hands out.
  const tokens = new ExchangeTokens(url, () => oidc({ actor: 'Alice' }));
  // The CI identity decides who the requester is, whatever the caller typed.
  const slipway = harness.slipway;
  const startedBy = new (slipway.constructor as typeof import('../helpers').TestSlipwayClient)(slipway.client, slipway.taskQueue, tokens);
  const input = plan({ version: uniqueVersion(), requester: 'someone-typed-this', config: sampleConfigText({ approval: '{ approvers: [alice, carol], minApprovals: 1, requesterCannotApprove: false, timeout: 1h }' }) });
  const { workflowId } = await startedBy.start({ ...input, requester: 'alice' });
  const { status } = await slipway.waitFor(workflowId, 'approval', { timeoutMs: 30_000, intervalMs: 100 });
  expect(status.requesterIdentity).toMatchObject({ issuer: 'ui', method: 'oidc', selfAsserted: false });
  expect(status.requester).toBe('alice');
  const r = await startedBy.decide(workflowId, 'approve', { approver: 'mallory-typed-this', comment: 'from CI' });
  expect(r.complete).toBe(true);
  const final = await slipway.result(workflowId);
  expect(final.approvals[0]).toMatchObject({ approver: 'alice', comment: 'from CI', identity: { issuer: 'ui', method: 'oidc', selfAsserted: false } });
});
