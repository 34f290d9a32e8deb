/**
 * The UI server's webhooks (client/ui/hooks.ts) through the real server (over HTTP on 127.0.0.1), with a fake client that
 * records what would reach Temporal: a forge delivery that does not verify is a 401 and sends nothing; a verified
 * pull-request event on a Slipway release branch sends exactly one Update to that release (a redelivery carries the
 * same delivery id, so the same Update id); other branches, repositories and unknown releases are 202 ignored. The
 * registry hook needs its bearer secret, starts one release per pushed tag of a configured service in the first
 * environment's repository (requested by the hook's principal, signed by the UI's issuer), attaches on redelivery,
 * and ignores Slipway's own promotions to later environments.
 */
import type { FastifyInstance } from 'fastify';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hmacSha256Hex } from '../../activities/gitops/forge/webhook';
import type { PullRequestNotice, SlipwayClient, StartResult } from '../../client/client';
import type { DecisionTokens } from '../../client/identity/tokens';
import { buildUiServer } from '../../client/ui/server';
import { releasesForBranch } from '../../client/ui/hooks';
import type { SlipwayConfig } from '../../model/config';
import { readClaims } from '../../model/decision-token';
import { parseGitopsDelivery } from '../../model/gitops';
import { releaseWorkflowId } from '../../model/identifiers';
import { parseConfig } from '../../model/plan';
import type { StartRequest } from '../../model/types';

const GITHUB = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'forge', 'github.json'), 'utf8')).webhook as { headers: Record<string, string>; secret: string; body: string };
const REGISTRY_SECRET = 'registry-hook-secret-0123456789';
const DIGEST = `sha256:${'d'.repeat(64)}`;

let keyDir: string;
let config: SlipwayConfig;

function configFor(dir: string): SlipwayConfig {
  const cfg = parseConfig(`
registries:
  dev: { type: oci, url: "127.0.0.1:5000", insecure: true }
environments:
  qa: { registry: dev }
  prod: { registry: dev, imagePrefix: prod/ }
identity: { issuers: [ { name: ui } ], local: true, keyDir: ${dir} }
ui: { auth: { mode: local, users: [alice] } }
services:
  delivery: { build: { context: services/delivery } }
  delivery-api: { build: { context: services/delivery } }
`);
  // Attached after parsing: slipway.yaml would also need kubeContext and flux objects, which the hooks do not read.
  cfg.environments.qa.delivery = parseGitopsDelivery({ type: 'gitops', repository: { url: 'https://github.com/team/environments.git', path: 'overlays/qa' }, format: 'kustomize', merge: 'pull-request', forge: { type: 'github', tokenEnv: 'GH_TOKEN' } });
  cfg.environments.prod.delivery = parseGitopsDelivery({ type: 'gitops', repository: { url: 'http://127.0.0.1:3000/slipway/env.git', path: 'overlays/prod' }, format: 'kustomize', merge: 'pull-request', forge: { type: 'gitea', tokenEnv: 'GITEA_TOKEN' } });
  return cfg;
}

/** Records every call that would reach Temporal; `running` holds the releases that exist and run. */
class FakeClient {
  readonly updates: { workflowId: string; environment: string; number: number; deliveryId?: string }[] = [];
  readonly starts: (Omit<StartRequest, 'requesterToken'> & { token: string })[] = [];
  readonly running = new Set<string>();
  async pullRequestChanged(workflowId: string, environment: string, number: number, deliveryId?: string): Promise<PullRequestNotice> {
    if (!this.running.has(workflowId)) return { outcome: 'not-found' };
    this.updates.push({ workflowId, environment, number, ...(deliveryId ? { deliveryId } : {}) });
    return { outcome: 'sent' };
  }
  readonly startOptions: { attachToEnded?: boolean }[] = [];
  async startSigned(req: Omit<StartRequest, 'requesterToken'>, tokens: DecisionTokens, opts: { attachToEnded?: boolean } = {}): Promise<StartResult> {
    this.startOptions.push(opts);
    const workflowId = releaseWorkflowId(req.service, req.version);
    const token = await tokens.token({ sub: req.requester, rel: workflowId, act: 'start', src: `image:${req.image}` });
    this.starts.push({ ...req, token });
    // As Temporal does: a second start of the same id attaches.
    const attached = this.running.has(workflowId);
    this.running.add(workflowId);
    return { workflowId, runId: 'run-1', attached };
  }
}

/** A real HTTP request (light-my-request's inject pulls in an ESM-only module jest does not transform). */
async function post(server: FastifyInstance, url: string, headers: Record<string, string>, payload: string) {
  const address = server.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const res = await fetch(`http://127.0.0.1:${port}${url}`, { method: 'POST', headers, body: payload });
  const body = await res.text();
  return { statusCode: res.status, body, json: () => JSON.parse(body) };
}
const listening = async (server: FastifyInstance) => {
  await server.listen({ host: '127.0.0.1', port: 0 });
  return server;
};

let fake: FakeClient;
let app: FastifyInstance;
const logs: string[] = [];

beforeAll(() => {
  keyDir = mkdtempSync(join(tmpdir(), 'slipway-hooks-'));
  config = configFor(keyDir);
});
afterAll(() => rmSync(keyDir, { recursive: true, force: true }));

beforeEach(async () => {
  fake = new FakeClient();
  logs.length = 0;
  app = await listening(await buildUiServer({
    slipway: fake as unknown as SlipwayClient,
    config,
    namespace: 'default',
    secret: randomBytes(32),
    hooks: { env: { SLIPWAY_FORGE_WEBHOOK_SECRET: GITHUB.secret, SLIPWAY_REGISTRY_WEBHOOK_SECRET: REGISTRY_SECRET }, log: (l) => logs.push(l) },
  }));
});
afterEach(() => app.close());

const QA_RELEASE = 'release:delivery:v1.0.2'; // the recorded delivery's head branch is slipway/qa/release-delivery-v1.0.2

const githubDelivery = (headers: Record<string, string> = GITHUB.headers, body = GITHUB.body) => post(app, '/hooks/forge/qa', headers, body);

describe('forge webhook', () => {
  test('a bad signature is a 401 and nothing is sent', async () => {
    fake.running.add(QA_RELEASE);
    const tampered = await githubDelivery(GITHUB.headers, GITHUB.body.replace('"number":7', '"number":8'));
    expect(tampered.statusCode).toBe(401);
    const unsigned = await githubDelivery({ 'X-GitHub-Event': 'pull_request', 'Content-Type': 'application/json' });
    expect(unsigned.statusCode).toBe(401);
    const wrongKey = await githubDelivery({ ...GITHUB.headers, 'X-Hub-Signature-256': `sha256=${hmacSha256Hex('not-the-secret', GITHUB.body)}` });
    expect(wrongKey.statusCode).toBe(401);
    expect(fake.updates).toEqual([]);
    expect(JSON.stringify(logs) + tampered.body).not.toContain(GITHUB.secret);
  });

  test('a verified pull-request event wakes exactly its release; a redelivery is the same Update', async () => {
    fake.running.add(QA_RELEASE);
    const r = await githubDelivery();
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ ok: true, release: QA_RELEASE, pullRequest: 7 });
    expect(fake.updates).toEqual([{ workflowId: QA_RELEASE, environment: 'qa', number: 7, deliveryId: GITHUB.headers['X-GitHub-Delivery'] }]);
    await githubDelivery();
    expect(fake.updates).toHaveLength(2);
    expect(fake.updates[1]).toEqual(fake.updates[0]);
  });

  test('an unknown release, another repository or a non-release branch is 202 ignored', async () => {
    const unknown = await githubDelivery();
    expect(unknown.statusCode).toBe(202);
    expect(unknown.json().ignored).toMatch(/no running release release:delivery:v1\.0\.2/);
    fake.running.add(QA_RELEASE);
    const sign = (body: string) => ({ ...GITHUB.headers, 'X-Hub-Signature-256': `sha256=${hmacSha256Hex(GITHUB.secret, body)}` });
    const feature = GITHUB.body.replace(/slipway\/qa\/release-delivery-v1\.0\.2/g, 'feature/x');
    expect((await githubDelivery(sign(feature), feature)).statusCode).toBe(202);
    const otherEnv = GITHUB.body.replace(/slipway\/qa\//g, 'slipway/prod/');
    expect((await githubDelivery(sign(otherEnv), otherEnv)).statusCode).toBe(202);
    const otherRepo = GITHUB.body.replace('"full_name":"team/environments"', '"full_name":"mallory/environments"');
    expect((await githubDelivery(sign(otherRepo), otherRepo)).json().ignored).toMatch(/mallory\/environments/);
    expect(fake.updates).toEqual([]);
  });

  test('each environment verifies with its own forge (Gitea HMAC); unknown or non-gitops environments are 404', async () => {
    const id = 'release:delivery-api:v2.0.0';
    fake.running.add(id);
    const body = JSON.stringify({ action: 'closed', number: 3, pull_request: { number: 3, html_url: 'http://127.0.0.1:3000/slipway/env/pulls/3', state: 'closed', merged: true, title: 't', head: { ref: 'slipway/prod/release-delivery-api-v2.0.0', sha: 'a'.repeat(40) }, base: { ref: 'main' }, merge_commit_sha: 'c'.repeat(40) }, repository: { full_name: 'slipway/env' } });
    const headers = { 'content-type': 'application/json', 'x-gitea-event': 'pull_request', 'x-gitea-delivery': 'f0e1d2c3-0000-4000-8000-000000000001' };
    // Gitea's HMAC under the one forge secret; a GitHub-style header is not what Gitea's adapter checks.
    const good = await post(app, '/hooks/forge/prod', { ...headers, 'x-gitea-signature': hmacSha256Hex(GITHUB.secret, body) }, body);
    expect(good.statusCode).toBe(200);
    expect(fake.updates).toEqual([{ workflowId: id, environment: 'prod', number: 3, deliveryId: headers['x-gitea-delivery'] }]);
    const githubStyle = await post(app, '/hooks/forge/prod', { ...headers, 'x-hub-signature-256': `sha256=${hmacSha256Hex(GITHUB.secret, body)}` }, body);
    expect(githubStyle.statusCode).toBe(401);
    expect((await post(app, '/hooks/forge/staging', headers, body)).statusCode).toBe(404);
    expect(fake.updates).toHaveLength(1);
  });

  test('a body over the limit is refused before anything is read into an Update', async () => {
    fake.running.add(QA_RELEASE);
    const big = JSON.stringify({ pad: 'x'.repeat(1024 * 1024 + 10) });
    const r = await githubDelivery({ ...GITHUB.headers, 'X-Hub-Signature-256': `sha256=${hmacSha256Hex(GITHUB.secret, big)}` }, big);
    expect(r.statusCode).toBe(413);
    expect(fake.updates).toEqual([]);
  });

  test('without the secret in the server environment the hook is off', async () => {
    const off = await listening(await buildUiServer({ slipway: fake as unknown as SlipwayClient, config, namespace: 'default', secret: randomBytes(32), hooks: { env: {} } }));
    fake.running.add(QA_RELEASE);
    expect((await post(off, '/hooks/forge/qa', GITHUB.headers, GITHUB.body)).statusCode).toBe(404);
    expect((await post(off, '/hooks/registry', { authorization: 'Bearer x' }, '{}')).statusCode).toBe(404);
    expect(fake.updates).toEqual([]);
    await off.close();
  });

  test('branch → release ids round-trip through the ref form, for services whose names share a prefix', () => {
    // Ambiguous in the ref form: both are candidates, the longer service first; the one that runs gets the Update.
    expect(releasesForBranch(config, 'qa', 'slipway/qa/release-delivery-api-v2.0.0')).toEqual(['release:delivery-api:v2.0.0', 'release:delivery:api-v2.0.0']);
    expect(releasesForBranch(config, 'qa', 'slipway-revert/qa/release-delivery-v1.0.2')).toEqual(['release:delivery:v1.0.2']);
    expect(releasesForBranch(config, 'qa', 'slipway/prod/release-delivery-v1.0.2')).toEqual([]);
    expect(releasesForBranch(config, 'qa', 'main')).toEqual([]);
  });
});

const distributionEnvelope = (tag: string, repository = 'delivery', host = '127.0.0.1:5000') =>
  JSON.stringify({
    events: [
      { id: 'e1', timestamp: '2026-12-01T08:00:00Z', action: 'push', target: { mediaType: 'application/octet-stream', digest: `sha256:${'b'.repeat(64)}`, repository }, request: { host } },
      { id: 'e2', timestamp: '2026-12-01T08:00:01Z', action: 'push', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: DIGEST, repository, tag }, request: { host, method: 'PUT' } },
      { id: 'e3', timestamp: '2026-12-01T08:00:02Z', action: 'pull', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: DIGEST, repository, tag }, request: { host } },
    ],
  });
const registry = (body: string, authorization = `Bearer ${REGISTRY_SECRET}`) =>
  post(app, '/hooks/registry', { 'content-type': 'application/vnd.docker.distribution.events.v1+json', ...(authorization ? { authorization } : {}) }, body);

describe('registry webhook', () => {
  test('no or a wrong bearer secret is a 401 and nothing is started', async () => {
    expect((await registry(distributionEnvelope('v1.0.3'), 'Bearer wrong')).statusCode).toBe(401);
    expect((await registry(distributionEnvelope('v1.0.3'), '')).statusCode).toBe(401);
    expect((await registry(distributionEnvelope('v1.0.3'), REGISTRY_SECRET)).statusCode).toBe(401);
    expect(fake.starts).toEqual([]);
  });

  test('a pushed tag starts one release for the hook principal, signed by the UI; a redelivery attaches', async () => {
    const r = await registry(distributionEnvelope('v1.0.3'));
    expect(r.statusCode).toBe(200);
    expect(r.json().started).toEqual([{ workflowId: 'release:delivery:v1.0.3', attached: false }]);
    expect(fake.starts).toHaveLength(1);
    expect(fake.starts[0]).toMatchObject({ service: 'delivery', version: 'v1.0.3', requester: 'registry-webhook', image: `127.0.0.1:5000/delivery:v1.0.3@${DIGEST}` });
    expect(readClaims(fake.starts[0].token)).toMatchObject({ iss: 'ui', sub: 'registry-webhook', rel: 'release:delivery:v1.0.3', act: 'start' });
    const again = await registry(distributionEnvelope('v1.0.3'));
    expect(again.json().started).toEqual([{ workflowId: 'release:delivery:v1.0.3', attached: true }]);
    // Even a release that ended (failed) is attached to, not started again: a redelivery never makes a second run.
    expect(fake.startOptions).toEqual([{ attachToEnded: true }, { attachToEnded: true }]);
  });

  test("ACR's payload starts the same way", async () => {
    const acr = JSON.stringify({ id: 'a1', timestamp: '2026-12-01T08:00:00Z', action: 'push', target: { mediaType: 'application/vnd.docker.distribution.manifest.v2+json', size: 524, digest: DIGEST, length: 524, repository: 'delivery-api', tag: 'v2.1.0' }, request: { id: 'r1', host: '127.0.0.1:5000', method: 'PUT', useragent: 'docker/24' } });
    const r = await registry(acr);
    expect(r.statusCode).toBe(200);
    expect(fake.starts.map((s) => `${s.service}:${s.version}`)).toEqual(['delivery-api:v2.1.0']);
  });

  test("Slipway's own promotions, other registries, unknown repositories and non-version tags start nothing", async () => {
    for (const body of [
      distributionEnvelope('v1.0.4', 'prod/delivery'),
      distributionEnvelope('v1.0.4', 'delivery', 'registry.example.com'),
      distributionEnvelope('v1.0.4', 'unrelated'),
      distributionEnvelope('latest'),
    ]) {
      const r = await registry(body);
      expect(r.statusCode).toBe(202);
      expect(r.json().ignored.length).toBeGreaterThan(0);
    }
    expect(fake.starts).toEqual([]);
  });
});
