/**
 * The Gitea forge adapter and the Git adapter together against the stack's real Gitea (client/stack/gitea.ts):
 * a release's change pushed on its release branch, the pull request opened once (a retry finds it), approved and
 * merged by a second user (merged_by and the merge commit read back), a pull request closed unmerged, a revert
 * through a pull request, a real webhook delivery checked against its X-Gitea-Signature, and a bad token.
 * The test needs only Gitea: it calls ensureGitea() itself (reusing a running one).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { ensureGitea, GITEA_REVIEWER, type GiteaEndpoint } from '../../client/stack/gitea';
import { failureOf } from '../../activities/gitops/errors';
import { forgeFor } from '../../activities/gitops/forge';
import { GiteaForge } from '../../activities/gitops/forge/gitea';
import { environmentRepositoryFor } from '../../activities/gitops';
import type { ReleaseChange } from '../../activities/gitops/ports';
import { parseGitopsDelivery, type GitopsDelivery } from '../../model/gitops';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const D3 = `sha256:${'3'.repeat(64)}`;
const IMAGE = '127.0.0.1:5000/delivery';
const TOKEN_ENV = 'SLIPWAY_TEST_GITEA_TOKEN';
const overlay = (digest: string) => `# qa overlay\nresources: [../../base]\nimages:\n  - name: delivery\n    newName: ${IMAGE}\n    digest: ${digest}\n`;

let gitea: GiteaEndpoint;
let owner: string;
let name: string;
let delivery: GitopsDelivery;
let env: NodeJS.ProcessEnv;
let hooks: Server;
const deliveries: { headers: Record<string, string | undefined>; body: Buffer }[] = [];
const WEBHOOK_SECRET = randomBytes(16).toString('hex');

async function api(method: string, path: string, body?: unknown, token = gitea.admin.token): Promise<any> {
  const res = await fetch(`${gitea.url}/api/v1${path}`, { method, headers: { authorization: `token ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

const change = (over: Partial<ReleaseChange> = {}): ReleaseChange => ({ workflowId: 'release:delivery:v1.0.2', environment: 'qa', service: 'delivery', version: 'v1.0.2', repository: IMAGE, digest: D2, ...over });
const fileOnMain = async () => Buffer.from((await api('GET', `/repos/${owner}/${name}/contents/overlays/qa/kustomization.yaml?ref=main`)).content, 'base64').toString();
const failed = async (p: Promise<unknown>) => p.then(() => { throw new Error('did not fail'); }, (e) => ({ failure: failureOf(e), message: String(e.message) }));

beforeAll(async () => {
  gitea = await ensureGitea();
  owner = gitea.admin.username;
  name = `env-${randomBytes(4).toString('hex')}`;
  await api('POST', '/user/repos', { name, auto_init: true, default_branch: 'main', private: true });
  await api('POST', `/repos/${owner}/${name}/contents/overlays/qa/kustomization.yaml`, { content: Buffer.from(overlay(D1)).toString('base64'), message: 'qa overlay', branch: 'main' });
  await api('PUT', `/repos/${owner}/${name}/collaborators/${GITEA_REVIEWER}`, { permission: 'write' });
  hooks = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      deliveries.push({ headers: req.headers as Record<string, string>, body: Buffer.concat(chunks) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));
  await api('POST', `/repos/${owner}/${name}/hooks`, { type: 'gitea', active: true, events: ['pull_request'], config: { url: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`, content_type: 'json', secret: WEBHOOK_SECRET } });
  delivery = parseGitopsDelivery({ type: 'gitops', repository: { url: `${gitea.url}/${owner}/${name}.git`, branch: 'main', path: 'overlays/qa' }, format: 'kustomize', merge: 'pull-request', forge: { type: 'gitea', tokenEnv: TOKEN_ENV } });
  env = { [TOKEN_ENV]: gitea.admin.token };
}, 300_000);

afterAll(async () => {
  await new Promise((r) => hooks?.close(r));
  if (gitea) await api('DELETE', `/repos/${owner}/${name}`).catch(() => undefined);
});

test('a release branch, one pull request however often it is retried, approved and merged by a second user', async () => {
  const repo = environmentRepositoryFor(delivery, env);
  const forge = forgeFor(delivery, env);
  const prepared = await repo.applyChange(change(), 'branch');
  expect(prepared).toMatchObject({ state: 'branch', branch: 'slipway/qa/release-delivery-v1.0.2' });
  const req = { head: prepared.branch, base: 'main', title: 'delivery v1.0.2 to qa', body: `Slipway release release:delivery:v1.0.2\n\n${IMAGE}@${D2}` };
  const pr = await forge.openPullRequest(req);
  expect(pr).toMatchObject({ state: 'open', head: { branch: prepared.branch, sha: prepared.commit }, base: 'main', author: owner });
  expect(pr.url).toBe(`${gitea.url}/${owner}/${name}/pulls/${pr.number}`);
  // A retried activity: same commit, same pull request, and Gitea holds exactly one.
  expect(await repo.applyChange(change(), 'branch')).toMatchObject({ commit: prepared.commit, reused: true });
  expect((await forge.openPullRequest(req)).number).toBe(pr.number);
  expect(await api('GET', `/repos/${owner}/${name}/pulls?state=all`)).toHaveLength(1);
  expect(await forge.findPullRequest(prepared.branch, 'main')).toMatchObject({ number: pr.number });

  // The reviewer approves; the author's own approval could never count.
  await api('POST', `/repos/${owner}/${name}/pulls/${pr.number}/reviews`, { event: 'APPROVED', body: 'looks right' }, gitea.reviewer.token);
  const reviewed = await forge.getPullRequest(pr.number);
  expect(reviewed.approvedBy).toEqual([GITEA_REVIEWER]);
  expect(reviewed.reviews).toContainEqual(expect.objectContaining({ user: GITEA_REVIEWER, state: 'approved', commit: prepared.commit }));

  // Merged as the second user (its own token): merged_by and the merge commit come back from Gitea.
  const asReviewer = new GiteaForge({ apiUrl: `${gitea.url}/api/v1`, owner, repo: name, token: gitea.reviewer.token, repository: delivery.repository.url });
  const merged = await asReviewer.mergePullRequest(pr.number, { sha: prepared.commit });
  expect(merged).toMatchObject({ state: 'merged', mergedBy: GITEA_REVIEWER });
  expect(merged.mergeCommit).toMatch(/^[0-9a-f]{40}$/);
  expect(await asReviewer.mergePullRequest(pr.number)).toMatchObject({ state: 'merged', mergeCommit: merged.mergeCommit });
  expect(await fileOnMain()).toBe(overlay(D2));
  expect(await repo.findChange('release:delivery:v1.0.2', 'qa', D2)).toEqual({ where: 'target', commit: prepared.commit, digest: D2 });
  expect(await repo.applyChange(change(), 'branch')).toMatchObject({ state: 'landed', commit: prepared.commit, reused: true });

  // Gitea delivered the pull request events, signed: each verifies, a tampered one does not.
  const deadline = Date.now() + 30_000;
  while (!deliveries.some((d) => forge.parseWebhook(d.headers, d.body)?.merged) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  const mergedEvent = deliveries.find((d) => forge.parseWebhook(d.headers, d.body)?.merged);
  expect(mergedEvent).toBeDefined();
  for (const d of deliveries) expect(() => forge.verifyWebhook(d.headers, d.body, WEBHOOK_SECRET)).not.toThrow();
  expect(forge.parseWebhook(mergedEvent!.headers, mergedEvent!.body)).toMatchObject({ pullRequest: pr.number, action: 'closed', state: 'merged', merged: true, headBranch: prepared.branch, mergeCommit: merged.mergeCommit, repository: `${owner}/${name}` });
  const tampered = Buffer.from(mergedEvent!.body.toString().replace(/"merged":\s*true/, '"merged": false'));
  expect(tampered.equals(mergedEvent!.body)).toBe(false);
  expect((await failed(Promise.resolve().then(() => forge.verifyWebhook(mergedEvent!.headers, tampered, WEBHOOK_SECRET)))).failure).toBe('bad-signature');
  expect((await failed(Promise.resolve().then(() => forge.verifyWebhook(mergedEvent!.headers, mergedEvent!.body, 'another-secret')))).failure).toBe('bad-signature');

  // Rollback through a pull request: the revert branch, its pull request merged, the file back to D1.
  const revert = await repo.revertChange('release:delivery:v1.0.2', 'qa', 'branch');
  expect(revert).toMatchObject({ state: 'branch', branch: 'slipway-revert/qa/release-delivery-v1.0.2', reverts: prepared.commit });
  const revertPr = await forge.openPullRequest({ head: revert.branch, base: 'main', title: 'Revert delivery v1.0.2 in qa', body: '' });
  await asReviewer.mergePullRequest(revertPr.number, { sha: revert.commit });
  expect(await fileOnMain()).toBe(overlay(D1));
  expect(await repo.revertChange('release:delivery:v1.0.2', 'qa', 'branch')).toMatchObject({ state: 'landed', reused: true });
});

test('a pull request closed without merging reads as closed, with no merger', async () => {
  const repo = environmentRepositoryFor(delivery, env);
  const forge = forgeFor(delivery, env);
  const prepared = await repo.applyChange(change({ workflowId: 'release:delivery:v1.0.3', version: 'v1.0.3', digest: D3 }), 'branch');
  const pr = await forge.openPullRequest({ head: prepared.branch, base: 'main', title: 'delivery v1.0.3 to qa', body: '' });
  await api('PATCH', `/repos/${owner}/${name}/pulls/${pr.number}`, { state: 'closed' }, gitea.reviewer.token);
  const closed = await forge.getPullRequest(pr.number);
  expect(closed.state).toBe('closed');
  expect(closed.mergedBy).toBeUndefined();
  expect(closed.mergeCommit).toBeUndefined();
  expect(await forge.mergePullRequest(pr.number)).toMatchObject({ state: 'closed' });
  expect(await repo.findChange('release:delivery:v1.0.3', 'qa')).toMatchObject({ where: 'branch', commit: prepared.commit });
});

test('a bad token: the forge and git both fail as auth, naming the repository, without the token', async () => {
  const bad = { [TOKEN_ENV]: 'f'.repeat(40) };
  const viaForge = await failed(forgeFor(delivery, bad).getPullRequest(1));
  expect(viaForge).toMatchObject({ failure: 'auth' });
  expect(viaForge.message).toContain(delivery.repository.url);
  const viaGit = await failed(environmentRepositoryFor(delivery, bad).applyChange(change(), 'branch'));
  expect(viaGit.failure).toMatch(/^(auth|not-found)$/); // a private repository is "not found" to a stranger on some forges
  expect(viaGit.message).not.toContain('f'.repeat(40));
  expect(await failed(Promise.resolve().then(() => forgeFor(delivery, {})))).toMatchObject({ failure: 'auth', message: expect.stringContaining(`has no ${TOKEN_ENV}`) });
});

test('two releases editing the same line: once one merges, the other pull request cannot merge (typed merge conflict)', async () => {
  const repo = environmentRepositoryFor(delivery, env);
  const forge = forgeFor(delivery, env);
  const a = await repo.applyChange(change({ workflowId: 'release:delivery:v2.0.0', version: 'v2.0.0', environment: 'qa', digest: `sha256:${'4'.repeat(64)}` }), 'branch');
  const b = await repo.applyChange(change({ workflowId: 'release:delivery:v2.0.1', version: 'v2.0.1', environment: 'qa', digest: `sha256:${'5'.repeat(64)}` }), 'branch');
  const prA = await forge.openPullRequest({ head: a.branch, base: 'main', title: 'a', body: '' });
  const prB = await forge.openPullRequest({ head: b.branch, base: 'main', title: 'b', body: '' });
  expect(prB.number).not.toBe(prA.number);
  expect(await forge.mergePullRequest(prA.number, { sha: a.commit })).toMatchObject({ state: 'merged' });
  const r = await failed(forge.mergePullRequest(prB.number, { sha: b.commit }));
  expect(r.failure).toBe('merge-conflict');
  expect(r.message).toMatch(new RegExp(`^${delivery.repository.url.replace(/[.]/g, '\\.')}: pull request #${prB.number} cannot be merged: HTTP 40[59]`));
  expect((await forge.getPullRequest(prB.number)).state).toBe('open');
});
