/**
 * The decision-token rules, attempt by attempt: each row names the rule it attacks and must be refused with its
 * reason (part of the bypass matrix; the workflow-level rows are in test/workflow/bypass.workflow.test.ts).
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { DecisionSigner } from '../../client/identity/signer';
import { rawPublicKey } from '../../host/keys';
import { normaliseIdentity, verifyDecisionToken, type DecisionClaims, type Expected, type TrustAnchors } from '../../model/decision-token';

const ui = generateKeyPairSync('ed25519');
const attacker = generateKeyPairSync('ed25519');
const NOW = Date.parse('2026-12-01T10:00:00Z');
const localKey = generateKeyPairSync('ed25519');
const trust: TrustAnchors = {
  issuers: [
    { name: 'ui', publicKey: rawPublicKey(ui.publicKey), selfAsserted: false },
    { name: 'local', publicKey: rawPublicKey(localKey.publicKey), selfAsserted: true },
  ],
  maxTtlSeconds: 300,
};
const DIG = `sha256:${'a'.repeat(64)}`;
const expect0: Expected = { act: 'approve', rel: 'release:delivery:v1.0.0', run: 'run-1', env: 'prod', dig: DIG };
const signer = new DecisionSigner('ui', ui.privateKey, 'session', 300, () => NOW);
const localSigner = new DecisionSigner('local', localKey.privateKey, 'local', 300, () => NOW);
const good = (o: Partial<DecisionClaims> = {}) => signer.sign({ sub: 'alice', rel: expect0.rel, run: 'run-1', env: 'prod', dig: DIG, act: 'approve' }, o);
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
/** A token signed by any key, with any header and claims. */
const raw = (header: object, claims: object, key = ui.privateKey) => {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString('base64url')}`;
};
const claimsOf = (t: string) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url').toString());

test('a token signed by a pinned issuer for exactly this decision is accepted', () => {
  const r = verifyDecisionToken(good(), trust, expect0, NOW, new Set());
  expect(r).toMatchObject({ ok: true, claims: { sub: 'alice', iss: 'ui', amr: 'session' } });
});

const rows: { rule: string; token: () => unknown; expect?: Partial<Expected>; now?: number; used?: string[]; reason: RegExp }[] = [
  { rule: 'a decision needs a token', token: () => undefined, reason: /token is required/ },
  { rule: 'a token is a string', token: () => ({ sub: 'alice' }), reason: /compact JWS/ },
  { rule: 'a token is a compact JWS', token: () => 'not.a-token', reason: /compact JWS/ },
  { rule: 'size is bounded', token: () => 'a'.repeat(9000), reason: /8192/ },
  { rule: 'alg must be EdDSA (no "none")', token: () => `${b64({ alg: 'none', kid: 'ui' })}.${good().split('.')[1]}.`, reason: /alg EdDSA/ },
  { rule: 'the issuer must be pinned', token: () => raw({ alg: 'EdDSA', kid: 'evil' }, claimsOf(good())), reason: /not trusted/ },
  { rule: 'the signature must be the pinned key\'s', token: () => raw({ alg: 'EdDSA', kid: 'ui' }, claimsOf(good()), attacker.privateKey), reason: /does not verify/ },
  { rule: 'claims cannot be changed after signing', token: () => { const [h, , s] = good().split('.'); return `${h}.${b64({ ...claimsOf(good()), sub: 'mallory' })}.${s}`; }, reason: /does not verify/ },
  { rule: 'signature bytes must be whole', token: () => good().slice(0, -4), reason: /does not verify/ },
  { rule: 'iss must match the key id', token: () => raw({ alg: 'EdDSA', kid: 'ui' }, { ...claimsOf(good()), iss: 'other' }), reason: /differs from its key id/ },
  { rule: 'bound to the decision', token: () => good({ act: 'reject' }), reason: /issued for "reject"/ },
  { rule: 'bound to the release', token: () => good({ rel: 'release:delivery:v9.9.9' }), reason: /issued for release/ },
  { rule: 'bound to the run', token: () => good({ run: 'run-0' }), reason: /issued for run run-0/ },
  { rule: 'bound to the environment', token: () => good({ env: 'qa' }), reason: /environment "qa"/ },
  { rule: 'bound to the digest', token: () => good({ dig: `sha256:${'b'.repeat(64)}` }), reason: /issued for digest/ },
  { rule: 'a canary action is bound to its step', token: () => good({ act: 'canary:promote', step: 1 }), expect: { act: 'canary:promote', step: 2 }, reason: /step 1/ },
  { rule: 'tokens expire', token: () => good(), now: NOW + 301_000, reason: /expired/ },
  { rule: 'not issued in the future', token: () => good({ iat: Math.floor(NOW / 1000) + 3600, exp: Math.floor(NOW / 1000) + 3700 }), reason: /future/ },
  { rule: 'lifetime is bounded by the configuration', token: () => good({ exp: Math.floor(NOW / 1000) + 86_400 }), reason: /lifetime/ },
  { rule: 'single use', token: () => good({ jti: 'seen' }), used: ['seen'], reason: /already used/ },
  { rule: 'identities are normalised', token: () => good({ sub: 'Alice ' }), reason: /malformed/ },
  { rule: 'claims must be complete', token: () => raw({ alg: 'EdDSA', kid: 'ui' }, { iss: 'ui', sub: 'alice', act: 'approve' }), reason: /malformed/ },
  { rule: 'a self-asserting key cannot claim someone authenticated the person', token: () => localSigner.sign({ sub: 'alice', rel: expect0.rel, run: 'run-1', env: 'prod', dig: DIG, act: 'approve' }, { amr: 'oidc' }), reason: /must say amr "local"/ },
  { rule: 'a start is bound to what it releases', token: () => good({ act: 'start', src: 'image:evil.example/x@sha256:00' }), expect: { act: 'start', run: undefined, env: undefined, dig: undefined, src: 'git:abcdef1' }, reason: /issued to release image:evil/ },
  { rule: 'auth method must be known', token: () => good({ amr: 'trust-me' as never }), reason: /malformed/ },
];

test.each(rows)('refused: $rule', ({ token, expect: e, now, used, reason }) => {
  const r = verifyDecisionToken(token(), trust, { ...expect0, ...e }, now ?? NOW, new Set(used ?? []));
  expect(r.ok).toBe(false);
  expect(!r.ok && r.reason).toMatch(reason);
});

test('identities: one normal form (trim, lower-case)', () => {
  expect(normaliseIdentity('  Bob ')).toBe('bob');
  expect(normaliseIdentity('bob')).toBe(normaliseIdentity('BOB'));
});
