/**
 * The GitOps half of the local stack (client/stack/gitea.ts, client/stack/flux.ts), for real: a private repository on
 * Gitea holding a Deployment of the sample image (placed on prod's real node) and a Service, pushed with `git`; a
 * GitRepository and Kustomization in a test namespace of prod pulling it with the admin's token; Flux applying the
 * pushed commit and the pod running it. Then changes: pushed and applied with and without the
 * reconcile.fluxcd.io/requestedAt annotation (push → applied times are printed), and one merged through a pull
 * request by the second user, `reviewer`, through Gitea's API.
 * Tokens reach git through GIT_CONFIG_* environment variables (an http.extraHeader), never a URL or an argument.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { k8s } from '../../activities/kubernetes/client';
import { KubeCluster } from '../../activities/kubernetes/cluster';
import { ensureGitops, fluxStatus, requestReconcile, type FluxObjectRef, type GitopsEndpoint } from '../../client/stack/flux';
import { ensureRealNode, REAL_NODE_PLACEMENT, type RealNodeEndpoint } from '../../client/stack/node';
import { pushSampleImage, uniqueNamespace } from '../deploy-helpers';
import { eventually } from '../helpers';
import { testStack } from '../setup/stack-info';

const run = promisify(execFile);
const stack = testStack();
const cluster = KubeCluster.forKubeconfig(stack.kubeconfig);
const context = stack.contexts.prod;
const core = cluster.api(context, k8s.CoreV1Api);
const custom = cluster.api(context, k8s.CustomObjectsApi);
const namespace = uniqueNamespace('gitops');
const repo = `env-${randomBytes(3).toString('hex')}`;
const APP = 'gitops-delivery';
/** The GitRepository's poll interval: what a change waits for when nobody asks Flux to reconcile. */
const POLL_INTERVAL_S = 60;
const source: FluxObjectRef = { kind: 'GitRepository', namespace, name: 'env' };
const kustomization: FluxObjectRef = { kind: 'Kustomization', namespace, name: 'delivery' };

let gitops: GitopsEndpoint;
let image: string;
let realNode: RealNodeEndpoint;
let work: string;
const timings: Record<string, number> = {};

/** Gitea's API as the given user. */
async function api<T>(token: string, method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${gitops.gitea.url}/api/v1${path}`, {
    method,
    headers: { Authorization: `token ${token}`, 'Content-Type': 'application/json', Accept: 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`Gitea ${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** git in the working copy, authenticated as the admin by an extra header from the environment (not argv, not the URL). */
async function git(...args: string[]): Promise<string> {
  const basic = Buffer.from(`${gitops.gitea.admin.username}:${gitops.gitea.admin.token}`).toString('base64');
  const env = {
    PATH: process.env.PATH,
    HOME: work,
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: 'http.extraHeader',
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${basic}`,
  };
  const { stdout } = await run('git', ['-C', join(work, 'repo'), '-c', 'user.name=Slipway Test', '-c', 'user.email=test@slipway.invalid', ...args], { env });
  return stdout.trim();
}

const repoUrl = () => `${gitops.gitea.url}/${gitops.gitea.admin.username}/${repo}.git`;

/** The environment repository's content: the sample app on the real node, its VERSION env as the change. */
function writeManifests(version: string): void {
  const labels = { app: APP };
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: APP, labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels },
        spec: {
          ...REAL_NODE_PLACEMENT,
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'delivery',
              image,
              env: [{ name: 'VERSION', value: version }],
              ports: [{ containerPort: 8080 }],
              readinessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  };
  const service = { apiVersion: 'v1', kind: 'Service', metadata: { name: APP }, spec: { selector: labels, ports: [{ port: 80, targetPort: 8080 }] } };
  const dir = join(work, 'repo', 'apps', 'delivery');
  writeFileSync(join(dir, 'deployment.yaml'), JSON.stringify(deployment, null, 2));
  writeFileSync(join(dir, 'service.yaml'), JSON.stringify(service, null, 2));
  writeFileSync(join(dir, 'kustomization.yaml'), 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n  - service.yaml\n');
}

/** Commits the manifests for `version` and pushes `branch`; returns the commit. */
async function commitAndPush(version: string, branch = 'main'): Promise<string> {
  writeManifests(version);
  await git('add', '-A');
  await git('commit', '-q', '-m', `delivery: VERSION=${version}`);
  await git('push', '-q', repoUrl(), `HEAD:refs/heads/${branch}`);
  return git('rev-parse', 'HEAD');
}

/** Waits until the Kustomization reports `commit` on main applied; returns the ms it took from `since`. */
async function appliedAfter(commit: string, since: number, timeoutMs: number): Promise<number> {
  const want = `main@sha1:${commit}`;
  await eventually(async () => (await fluxStatus(stack.kubeconfig, context, kustomization)).revision === want, timeoutMs, 100);
  return Date.now() - since;
}

/** The Ready pod of the app whose VERSION env is `version`, answering over HTTP with that version. */
async function runningPod(version: string): Promise<import('@kubernetes/client-node').V1Pod> {
  return eventually(async () => {
    const pods = (await core.listNamespacedPod({ namespace, labelSelector: `app=${APP}` })).items;
    const pod = pods.find(
      (p) =>
        !p.metadata?.deletionTimestamp &&
        p.spec?.containers[0].env?.find((e) => e.name === 'VERSION')?.value === version &&
        p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    if (!pod) return undefined;
    const res = await fetch(`http://${pod.status!.podIP}:8080/api/deliveries`, { signal: AbortSignal.timeout(3_000) }).catch(() => undefined);
    return res?.ok && ((await res.json()) as { version?: string }).version === version ? pod : undefined;
  }, 120_000, 250);
}

beforeAll(async () => {
  let t = Date.now();
  gitops = await ensureGitops({ kubeconfig: stack.kubeconfig });
  timings.ensureGitopsMs = Date.now() - t;
  t = Date.now();
  const again = await ensureGitops({ kubeconfig: stack.kubeconfig });
  timings.ensureGitopsReuseMs = Date.now() - t;
  expect(again.gitea.started).toBe(false);
  expect(Object.values(again.flux).flatMap((f) => Object.values(f.controllers)).every((c) => !c.started)).toBe(true);

  realNode = await ensureRealNode('prod', stack.registry);
  image = await pushSampleImage(`${stack.registry.url}/gitops/delivery:test`, 'gitops-image');
  work = mkdtempSync(join(tmpdir(), 'slipway-gitops-'));
  await run('mkdir', ['-p', join(work, 'repo', 'apps', 'delivery')]);
  await run('git', ['init', '-q', '-b', 'main', join(work, 'repo')]);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
}, 600_000);

afterAll(async () => {
  // The Flux objects carry finalizers their controllers remove: delete them (pruning what they applied) while the
  // controllers run, then the namespace, so nothing is left stuck in Terminating.
  const gone = async (ref: FluxObjectRef) => {
    const api = ref.kind === 'GitRepository' ? { group: 'source.toolkit.fluxcd.io', plural: 'gitrepositories' } : { group: 'kustomize.toolkit.fluxcd.io', plural: 'kustomizations' };
    await custom.deleteNamespacedCustomObject({ ...api, version: 'v1', namespace, name: ref.name }).catch(() => undefined);
    await eventually(async () => custom.getNamespacedCustomObject({ ...api, version: 'v1', namespace, name: ref.name }).then(() => false, () => true), 60_000, 250).catch(() => undefined);
  };
  await gone(kustomization);
  await gone(source);
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  if (gitops) await api(gitops.gitea.admin.token, 'DELETE', `/repos/${gitops.gitea.admin.username}/${repo}`).catch(() => undefined);
  if (work) rmSync(work, { recursive: true, force: true });
  console.log(`gitops timings: ${JSON.stringify(timings)}`);
}, 120_000);

test('Gitea runs the pinned version with an admin and a reviewer whose tokens are kept 0600', async () => {
  expect(gitops.gitea.version).toBe('1.27.3');
  expect(statSync(gitops.gitea.credentialsFile).mode & 0o777).toBe(0o600);
  expect((await api<{ login: string; is_admin: boolean }>(gitops.gitea.admin.token, 'GET', '/user'))).toMatchObject({ login: 'slipway-admin', is_admin: true });
  expect((await api<{ login: string; is_admin: boolean }>(gitops.gitea.reviewer.token, 'GET', '/user'))).toMatchObject({ login: 'reviewer', is_admin: false });
  // The reviewer's token is scoped: no admin API.
  await expect(api(gitops.gitea.reviewer.token, 'GET', '/admin/users')).rejects.toThrow(/HTTP 403/);
  // Self-registration is off and nothing answers without a token where one is needed.
  const anon = await fetch(`${gitops.gitea.url}/api/v1/user`, { signal: AbortSignal.timeout(5_000) });
  expect(anon.status).toBe(401);
});

test('Flux applies a pushed commit from a private Gitea repository and the pod runs it on the real node', async () => {
  await api(gitops.gitea.admin.token, 'POST', '/user/repos', { name: repo, private: true, auto_init: false, default_branch: 'main' });
  const first = await commitAndPush('gitops-1');

  // Flux reads the private repository as the admin (basic auth, the token as password), from a Secret.
  await core.createNamespacedSecret({
    namespace,
    body: { metadata: { name: 'gitea-auth' }, type: 'Opaque', stringData: { username: gitops.gitea.admin.username, password: gitops.gitea.admin.token } },
  });
  const t0 = Date.now();
  await custom.createNamespacedCustomObject({
    group: 'source.toolkit.fluxcd.io',
    version: 'v1',
    namespace,
    plural: 'gitrepositories',
    body: {
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'GitRepository',
      metadata: { name: source.name },
      spec: { url: repoUrl(), ref: { branch: 'main' }, interval: `${POLL_INTERVAL_S}s`, timeout: '20s', secretRef: { name: 'gitea-auth' } },
    },
  });
  await custom.createNamespacedCustomObject({
    group: 'kustomize.toolkit.fluxcd.io',
    version: 'v1',
    namespace,
    plural: 'kustomizations',
    body: {
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata: { name: kustomization.name },
      spec: { interval: '10m', path: './apps/delivery', prune: true, targetNamespace: namespace, sourceRef: { kind: 'GitRepository', name: source.name }, timeout: '2m' },
    },
  });
  timings.firstAppliedMs = await appliedAfter(first, t0, 120_000);
  const src = await fluxStatus(stack.kubeconfig, context, source);
  expect(src.ready?.status).toBe('True');
  expect(src.revision).toBe(`main@sha1:${first}`);
  expect((await fluxStatus(stack.kubeconfig, context, kustomization)).ready?.status).toBe('True');

  const pod = await runningPod('gitops-1');
  timings.firstPodReadyMs = Date.now() - t0;
  expect(pod.spec?.nodeName).toBe(realNode.nodeName);
  // The kubelet reports the digest containerd pulled: the one pushed.
  expect(pod.status?.containerStatuses?.[0]?.imageID).toContain(image.split('@')[1]);
  const svc = await core.readNamespacedService({ name: APP, namespace });
  expect(svc.metadata?.labels?.['kustomize.toolkit.fluxcd.io/name']).toBe(kustomization.name);
}, 300_000);

test('a pushed change is applied at once with reconcile.fluxcd.io/requestedAt, and at the next poll without', async () => {
  // With the annotation on the GitRepository (what Slipway does after a merge).
  const withCommit = await commitAndPush('gitops-2');
  let t0 = Date.now();
  const requested = await requestReconcile(stack.kubeconfig, context, [source]);
  timings.pushToAppliedWithRequestMs = await appliedAfter(withCommit, t0, 60_000);
  timings.pushToPodReadyWithRequestMs = (await runningPod('gitops-2'), Date.now() - t0);
  expect((await fluxStatus(stack.kubeconfig, context, source)).lastHandledReconcileAt).toBe(requested);
  // Well inside the poll interval: the annotation, not the poll, brought it.
  expect(timings.pushToAppliedWithRequestMs).toBeLessThan(15_000);

  // Without: the change waits for source-controller's next poll of the branch (up to the interval, plus jitter).
  const withoutCommit = await commitAndPush('gitops-3');
  t0 = Date.now();
  timings.pushToAppliedWithoutRequestMs = await appliedAfter(withoutCommit, t0, (POLL_INTERVAL_S + 30) * 1000);
  // The source was reconciled seconds ago and its next poll is one interval (±5 % jitter) after that.
  expect(timings.pushToAppliedWithoutRequestMs).toBeGreaterThan(POLL_INTERVAL_S * 1000 * 0.8);
  await runningPod('gitops-3');
  timings.pollIntervalMs = POLL_INTERVAL_S * 1000;
}, 300_000);

test('a pull request merged by the reviewer through the API is what Flux applies', async () => {
  const owner = gitops.gitea.admin.username;
  await api(gitops.gitea.admin.token, 'PUT', `/repos/${owner}/${repo}/collaborators/${gitops.gitea.reviewer.username}`, { permission: 'write' });
  await git('checkout', '-q', '-b', 'release-4');
  await commitAndPush('gitops-4', 'release-4');
  await git('checkout', '-q', 'main');
  const pr = await api<{ number: number }>(gitops.gitea.admin.token, 'POST', `/repos/${owner}/${repo}/pulls`, { head: 'release-4', base: 'main', title: 'delivery: VERSION=gitops-4' });
  // Gitea checks mergeability in the background just after a pull request opens.
  await eventually(async () => (await api<{ mergeable: boolean }>(gitops.gitea.reviewer.token, 'GET', `/repos/${owner}/${repo}/pulls/${pr.number}`)).mergeable, 30_000, 250);
  await api(gitops.gitea.reviewer.token, 'POST', `/repos/${owner}/${repo}/pulls/${pr.number}/merge`, { Do: 'merge' });
  const t0 = Date.now();
  const merged = await api<{ merged: boolean; merge_commit_sha: string; merged_by: { login: string } }>(gitops.gitea.admin.token, 'GET', `/repos/${owner}/${repo}/pulls/${pr.number}`);
  expect(merged).toMatchObject({ merged: true, merged_by: { login: 'reviewer' } });

  await requestReconcile(stack.kubeconfig, context, [source]);
  timings.mergeToAppliedWithRequestMs = await appliedAfter(merged.merge_commit_sha, t0, 60_000);
  await runningPod('gitops-4');
  timings.mergeToPodReadyWithRequestMs = Date.now() - t0;
}, 180_000);
