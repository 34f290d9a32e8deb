/**
 * GitOps releases end to end (issue #13), all real: the stack's Gitea holds the environment repository (`slipway gitops
 * init`'s layout, client/stack/gitops-env.ts), its Flux source- and kustomize-controllers apply each environment's
 * overlay to qa (kwok) and prod (whose pods run on the real node), and the release's workers change the repository
 * through the real git and Gitea adapters.
 *  - build → scan → push → pull request on qa's overlay → merged by the second user (reviewer) through Gitea's API →
 *    Flux applies → approval → promotion → prod's pull request → merged → Flux applies → prod's pod runs the digest;
 *  - a worker that dies after pushing its change, and again after opening the pull request, makes no second of
 *    either; the pull request closed unmerged rejects the release and nothing reached the branch;
 *  - an image that never becomes ready fails prod with Flux's own health-check reason, prod's change is reverted
 *    (auto-merge) and applied again, and qa's revert waits as a pull request for a person.
 */
import { ApplicationFailure } from '@temporalio/common';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { releaseIsRunning } from '../../activities';
import { createGitopsActivities } from '../../activities/gitops/activities';
import { FluxController } from '../../activities/flux/flux';
import { k8s } from '../../activities/kubernetes/client';
import { KubeCluster } from '../../activities/kubernetes/cluster';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import type { SlipwayClient } from '../../client/client';
import { ensureGitops, fluxStatus, requestReconcile, type GitopsEndpoint } from '../../client/stack/flux';
import { ensureGitopsEnvironment, giteaApi, removeGitopsEnvironment, type GitopsEnvironment } from '../../client/stack/gitops-env';
import { ensureRealNode, REAL_NODE_PLACEMENT, type RealNodeEndpoint } from '../../client/stack/node';
import { ErrorTypes } from '../../model/errors';
import { parseConfig, planRelease } from '../../model/plan';
import type { ReleaseStatus } from '../../model/types';
import { pushSampleImage, uniqueNamespace } from '../deploy-helpers';
import { ensureTestNamespace, eventually, outcomeOf, startHarness, terminateRunning, uniqueVersion, type Harness } from '../helpers';
import { realActivities } from '../real-activities';
import { testStack } from '../setup/stack-info';

const NS = 'slipway-gitops';
const stack = testStack();
const cluster = KubeCluster.forKubeconfig(stack.kubeconfig);
const ns = uniqueNamespace('gitops-rel');
const repository = `env-${randomBytes(3).toString('hex')}`;
const TOKEN_ENV = 'SLIPWAY_GITOPS_TEST_TOKEN';
const credentials = new EnvCredentialStore({ SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username, SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password }, '/nonexistent');

let gitops: GitopsEndpoint;
let env: GitopsEnvironment;
let harness: Harness;
let slipway: SlipwayClient;
let realNode: RealNodeEndpoint;
/** Which simulated crashes are still to happen (activity name → true): each makes the real call, then fails as a dead worker would. */
const crashAfter = new Set<string>();

/** slipway.yaml: qa and prod deliver through the environment repository (no chart: Git is the deploy). */
function configText(merge: { qa: string; prod: string } = { qa: 'pull-request', prod: 'pull-request' }, delivery?: GitopsEnvironment['delivery'], args: Record<string, string> = { VERSION: 'test' }, prodCanary?: unknown): string {
  const environment = (name: 'qa' | 'prod') => ({
    ...(name === 'prod' && prodCanary ? { canary: prodCanary } : {}),
    registry: 'dev',
    ...(name === 'prod' ? { imagePrefix: 'prod/', approval: { approvers: ['alice'] } } : {}),
    kubeContext: stack.contexts[name],
    namespace: name === 'prod' ? ns : `${ns}-qa`,
    deploy: { timeout: '3m', smoke: [{ type: 'rollout' }] },
    ...(delivery ? { delivery: { ...delivery[name], merge: merge[name] } } : {}),
  });
  return stringify({
    registries: { dev: { type: 'oci', url: stack.registry.url, insecure: true } },
    environments: { qa: environment('qa'), prod: environment('prod') },
    identity: { issuers: [{ name: 'ui' }], local: true },
    services: { delivery: { build: { context: 'services/delivery', args } } },
  });
}

function start(merge?: { qa: string; prod: string }, args: Record<string, string> = {}, prodCanary?: unknown) {
  const version = uniqueVersion();
  return slipway.start(planRelease(parseConfig(configText(merge, env.delivery, { VERSION: version, ...args }, prodCanary)), { service: 'delivery', version, requester: 'ci-bot' }));
}

const owner = () => env.owner;
/** The file a path names on a branch of the environment repository, through Gitea's API. */
async function fileOn(branch: string, path: string): Promise<string> {
  const r = await giteaApi<{ content: string }>(gitops, 'admin', 'GET', `/repos/${owner()}/${repository}/contents/${path}?ref=${encodeURIComponent(branch)}`);
  if (r.status !== 200) throw new Error(`${path} on ${branch}: HTTP ${r.status}`);
  return Buffer.from(r.body.content, 'base64').toString('utf8');
}

/** The release's pull request in `environment` once the release waits for its merge. */
async function awaitingMerge(id: string, environment: string): Promise<{ number: number; url: string; status: ReleaseStatus }> {
  const status = await eventually(async () => {
    const s = await slipway.status(id);
    if (s.phase === 'failed') throw new Error(`release failed: ${s.error}`);
    return s.gitops?.[environment]?.state === 'awaiting-merge' ? s : undefined;
  }, 240_000, 500);
  const pr = status.gitops![environment].pullRequest!;
  return { number: pr.number, url: pr.url, status };
}

/** Merges a pull request as the reviewer (the second person), once Gitea has checked it is mergeable; tells the release (as the forge's webhook would). */
async function mergeAsReviewer(id: string, environment: string, number: number): Promise<void> {
  await eventually(async () => (await giteaApi<{ mergeable: boolean }>(gitops, 'reviewer', 'GET', `/repos/${owner()}/${repository}/pulls/${number}`)).body.mergeable, 30_000, 250);
  const r = await giteaApi(gitops, 'reviewer', 'POST', `/repos/${owner()}/${repository}/pulls/${number}/merge`, { Do: 'merge' });
  expect(r.status).toBeLessThan(300);
  expect(await slipway.pullRequestChanged(id, environment, number)).toEqual({ outcome: 'sent' });
}

beforeAll(async () => {
  process.env.KUBECONFIG = stack.kubeconfig;
  gitops = await ensureGitops({ kubeconfig: stack.kubeconfig });
  realNode = await ensureRealNode('prod', stack.registry);
  // What prod runs before the first release: an image that exists, so Flux's health check of the seed passes.
  const baseline = await pushSampleImage(`${stack.registry.url}/prod/delivery:baseline`, 'baseline');
  env = await ensureGitopsEnvironment({
    gitops,
    kubeconfig: stack.kubeconfig,
    config: parseConfig(configText()),
    service: 'delivery',
    environments: ['qa', 'prod'],
    repository,
    fluxNamespace: ns,
    tokenEnv: TOKEN_ENV,
    podPatch: { prod: { ...REAL_NODE_PLACEMENT, terminationGracePeriodSeconds: 1 } },
    initialDigest: { prod: baseline.split('@')[1] },
    // A failed health check is reported after this long (Flux's default is 5m).
    applyTimeout: { prod: '45s' },
  });
  // The workers' environment holds the forge token (never the release's input).
  process.env[TOKEN_ENV] = gitops.gitea.admin.token;
  await eventually(async () => (await fluxStatus(stack.kubeconfig, stack.contexts.prod, { kind: 'Kustomization', namespace: ns, name: env.flux.prod.kustomization })).ready?.status === 'True', 180_000, 1000);

  await ensureTestNamespace(NS);
  const gitopsActs = createGitopsActivities({ flux: new FluxController(cluster, 500) });
  const crashing = <K extends 'gitopsApplyChange' | 'gitopsOpenPullRequest'>(name: K) =>
    (async (input: Parameters<(typeof gitopsActs)[K]>[0]) => {
      const result = await (gitopsActs[name] as (i: typeof input) => Promise<unknown>)(input);
      if (crashAfter.delete(name)) throw ApplicationFailure.retryable(`simulated worker death after ${name} did its work`, 'WorkerLost');
      return result;
    }) as (typeof gitopsActs)[K];
  harness = await startHarness(NS, { ...realActivities(credentials, 'gitops-host', {}, { holderActive: releaseIsRunning }), ...gitopsActs, gitopsApplyChange: crashing('gitopsApplyChange'), gitopsOpenPullRequest: crashing('gitopsOpenPullRequest') }, 'gitops-host');
  slipway = harness.slipway;
  await terminateRunning(slipway, 'leftover from an earlier run');
}, 900_000);

afterAll(async () => {
  await harness?.stop();
  if (env) await removeGitopsEnvironment(gitops, stack.kubeconfig, env).catch(() => undefined);
  for (const [name, context] of [[ns, stack.contexts.prod], [`${ns}-qa`, stack.contexts.qa]]) {
    await cluster.api(context, k8s.CoreV1Api).deleteNamespace({ name }).catch(() => undefined);
  }
  delete process.env[TOKEN_ENV];
}, 120_000);

test('a release goes through two pull requests merged by the reviewer; Flux applies each and prod\'s pod runs the digest on the real node', async () => {
  const { workflowId: id } = await start();
  const qa = await awaitingMerge(id, 'qa');
  expect(qa.url).toBe(`${gitops.gitea.url}/${owner()}/${repository}/pulls/${qa.number}`);
  // Nothing reached main while the pull request is open: the change waits on its release branch.
  expect(await fileOn('main', 'overlays/qa/kustomization.yaml')).not.toContain(qa.status.digest!);
  const pr = await giteaApi<{ state: string; head: { ref: string }; title: string }>(gitops, 'admin', 'GET', `/repos/${owner()}/${repository}/pulls/${qa.number}`);
  expect(pr.body).toMatchObject({ state: 'open', head: { ref: expect.stringMatching(/^slipway\/qa\//) } });
  expect(await fileOn(pr.body.head.ref, 'overlays/qa/kustomization.yaml')).toContain(qa.status.digest!);
  await mergeAsReviewer(id, 'qa', qa.number);

  const { status: atGate, reached } = await slipway.waitFor(id, 'approval', { timeoutMs: 240_000 });
  expect([atGate.error, reached]).toEqual([undefined, true]);
  const qaRecord = atGate.gitops!.qa;
  expect(qaRecord).toMatchObject({ state: 'applied', pullRequest: { state: 'merged', mergedBy: 'reviewer' } });
  expect(qaRecord.appliedRevision).toBe(`main@sha1:${qaRecord.pullRequest!.mergeCommit}`);
  expect(atGate.approvals).toContainEqual(expect.objectContaining({ environment: 'qa', approver: 'reviewer', decision: 'approved' }));
  // Flux applied it: qa's Deployment (kwok) names the release's digest.
  const qaDeploy = await cluster.api(stack.contexts.qa, k8s.AppsV1Api).readNamespacedDeployment({ name: 'delivery', namespace: `${ns}-qa` });
  expect(qaDeploy.spec!.template.spec!.containers[0].image).toBe(`${stack.registry.url}/delivery@${atGate.digest}`);
  expect(qaDeploy.metadata?.labels?.['kustomize.toolkit.fluxcd.io/name']).toBe(env.flux.qa.kustomization);

  await slipway.decide(id, 'approve', { approver: 'alice' });
  const prod = await awaitingMerge(id, 'prod');
  expect(await fileOn('main', 'overlays/prod/kustomization.yaml')).not.toContain(atGate.digest!);
  await mergeAsReviewer(id, 'prod', prod.number);
  const { type, status } = await outcomeOf(slipway, id);
  expect([type, status.error]).toEqual([undefined, undefined]);
  expect(status.gitops!.prod).toMatchObject({ state: 'applied', pullRequest: { state: 'merged', mergedBy: 'reviewer' } });
  expect(await fileOn('main', 'overlays/prod/kustomization.yaml')).toContain(status.digest!);

  // The pod prod runs: on the real node, from the promoted repository, the very digest that was scanned.
  const pod = await eventually(async () => {
    const pods = (await cluster.api(stack.contexts.prod, k8s.CoreV1Api).listNamespacedPod({ namespace: ns, labelSelector: 'app.kubernetes.io/name=delivery' })).items;
    return pods.find((p) => !p.metadata?.deletionTimestamp && p.spec?.containers[0].image?.endsWith(status.digest!) && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
  }, 120_000, 500);
  expect(pod.spec!.nodeName).toBe(realNode.nodeName);
  expect(pod.spec!.containers[0].image).toBe(`${stack.registry.url}/prod/delivery@${status.digest}`);
  expect(pod.status!.containerStatuses![0].imageID).toContain(status.digest!);
  const answer = await fetch(`http://${pod.status!.podIP}:8080/api/deliveries`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.json() as Promise<{ version?: string }>);
  expect(answer.version).toBe(status.version);
}, 900_000);

test('a worker that dies after each step makes no second commit or pull request; closing the pull request rejects the release', async () => {
  crashAfter.add('gitopsApplyChange');
  crashAfter.add('gitopsOpenPullRequest');
  const { workflowId: id } = await start();
  const qa = await awaitingMerge(id, 'qa');
  expect(crashAfter.size).toBe(0);
  const head = (await giteaApi<{ head: { ref: string } }>(gitops, 'admin', 'GET', `/repos/${owner()}/${repository}/pulls/${qa.number}`)).body.head.ref;
  // One pull request from the release branch, one release commit on it above main.
  const open = (await giteaApi<{ head: { ref: string } }[]>(gitops, 'admin', 'GET', `/repos/${owner()}/${repository}/pulls?state=all&limit=50`)).body.filter((p) => p.head.ref === head);
  expect(open).toHaveLength(1);
  const compare = await giteaApi<{ total_commits: number; commits: { commit: { message: string } }[] }>(gitops, 'admin', 'GET', `/repos/${owner()}/${repository}/compare/main...${encodeURIComponent(head)}`);
  expect(compare.body.total_commits).toBe(1);
  expect(compare.body.commits[0].commit.message).toContain(`Slipway-Release: ${id}`);

  const before = await fileOn('main', 'overlays/qa/kustomization.yaml');
  expect((await giteaApi(gitops, 'admin', 'PATCH', `/repos/${owner()}/${repository}/pulls/${qa.number}`, { state: 'closed' })).status).toBe(201);
  expect(await slipway.pullRequestChanged(id, 'qa', qa.number)).toEqual({ outcome: 'sent' });
  const { type, message, status } = await outcomeOf(slipway, id);
  expect(type).toBe(ErrorTypes.PullRequestClosed);
  expect(message).toContain('closed without being merged');
  expect(status.phase).toBe('rejected');
  expect(await fileOn('main', 'overlays/qa/kustomization.yaml')).toBe(before);
}, 600_000);

test('an image that never becomes ready fails prod with Flux\'s reason; prod is reverted and applied again, qa\'s revert waits as a pull request', async () => {
  const stableDigest = (await fileOn('main', 'overlays/prod/kustomization.yaml')).match(/sha256:[0-9a-f]{64}/)![0];
  const { workflowId: id } = await start({ qa: 'pull-request', prod: 'auto-merge' }, { HEALTH_STATUS: '503' });
  const qa = await awaitingMerge(id, 'qa');
  await mergeAsReviewer(id, 'qa', qa.number);
  await slipway.waitFor(id, 'approval', { timeoutMs: 240_000 });
  await slipway.decide(id, 'approve', { approver: 'alice' });
  const { type, message, status } = await outcomeOf(slipway, id);
  console.log(`failed release: ${type}: ${message}\n${status.error ?? ''}`);
  expect(type).toBe(ErrorTypes.FluxApplyFailed);
  // Flux's own words: its health check of the Deployment, which never became ready.
  expect(message).toMatch(/Flux could not apply [0-9a-f]+ \(Kustomization .*\): Ready=False \(HealthCheckFailed\)/);
  const prod = status.gitops!.prod;
  expect(prod.state).toBe('reverted');
  expect(await fileOn('main', 'overlays/prod/kustomization.yaml')).toContain(stableDigest);
  const applied = await fluxStatus(stack.kubeconfig, stack.contexts.prod, { kind: 'Kustomization', namespace: ns, name: env.flux.prod.kustomization });
  expect(applied.revision).toBe(`main@sha1:${prod.revert!.commit}`);
  expect(applied.ready?.status).toBe('True');
  // qa merges by pull request: its revert is one, left for a person, and the note says so.
  expect(status.gitops!.qa.state).toBe('revert-pull-request');
  expect(status.error).toContain(status.gitops!.qa.revert!.pullRequest!.url);
}, 900_000);

/** prod's canary: half the pods by replica ratio behind the one Service, judged on the sample's own error ratio in this namespace. */
const CANARY = {
  traffic: { type: 'replicas' },
  prometheus: { url: stack.prometheus.url, stepSeconds: 1 },
  queries: { errors: `(sum(rate(http_requests_total{code=~"5..",namespace="${ns}",track="$track"}[5s])) or vector(0)) / sum(rate(http_requests_total{namespace="${ns}",track="$track"}[5s]))` },
  judge: { metrics: [{ name: 'errors', groups: ['errors'], direction: 'increase', critical: true, nanStrategy: 'replace' }] },
  steps: [{ setWeight: 50 }, { pause: { duration: '10s' } }, { analysis: { duration: '12s', interval: '4s' } }],
  decisionTimeout: '20s',
};

test('under gitops a canary runs as Slipway\'s copy beside what Flux applied, a reconcile during it changes nothing, and promotion is the Git change', async () => {
  const apps = cluster.api(stack.contexts.prod, k8s.AppsV1Api);
  const core = cluster.api(stack.contexts.prod, k8s.CoreV1Api);
  // Bounded load on every ready pod of the service (replica routing: each pod its share), by pod IP on the real node.
  let loading = true;
  const until = Date.now() + 300_000;
  const load = (async () => {
    while (loading && Date.now() < until) {
      const pods = (await core.listNamespacedPod({ namespace: ns, labelSelector: 'app.kubernetes.io/name=delivery' }).catch(() => ({ items: [] }))).items;
      const ready = pods.filter((p) => p.status?.podIP && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      for (let i = 0; i < 5 && loading; i++) {
        await Promise.all(ready.map((p) => fetch(`http://${p.status!.podIP}:8080/api/deliveries`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.arrayBuffer(), () => undefined)));
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  })();
  try {
    const stableBefore = (await apps.readNamespacedDeployment({ name: 'delivery', namespace: ns })).spec!.template.spec!.containers[0].image!;
    const { workflowId: id } = await start({ qa: 'pull-request', prod: 'auto-merge' }, {}, CANARY);
    const qa = await awaitingMerge(id, 'qa');
    await mergeAsReviewer(id, 'qa', qa.number);
    await slipway.waitFor(id, 'approval', { timeoutMs: 240_000 });
    await slipway.decide(id, 'approve', { approver: 'alice' });
    const running = await eventually(async () => {
      const s = await slipway.status(id);
      if (s.phase === 'failed') throw new Error(`release failed: ${s.error}`);
      return s.canary?.environment === 'prod' && s.canary.weight === 50 ? s : undefined;
    }, 240_000, 250);
    const copy = await apps.readNamespacedDeployment({ name: 'delivery-canary', namespace: ns });
    expect(copy.spec!.template.spec!.containers[0].image).toBe(`${stack.registry.url}/prod/delivery@${running.digest}`);
    // Nobody else claims the copy: no Flux label on it, and Git still names the stable digest.
    expect(Object.keys(copy.metadata?.labels ?? {}).filter((k) => k.startsWith('kustomize.toolkit.fluxcd.io/'))).toEqual([]);
    expect(await fileOn('main', 'overlays/prod/kustomization.yaml')).not.toContain(running.digest!);

    // A reconcile of the environment while the canary runs: Flux applies Git again and leaves the canary's objects alone.
    const kustomization = { kind: 'Kustomization' as const, namespace: ns, name: env.flux.prod.kustomization };
    const asked = await requestReconcile(stack.kubeconfig, stack.contexts.prod, [{ kind: 'GitRepository', namespace: ns, name: env.flux.prod.gitRepository }, kustomization]);
    await eventually(async () => (await fluxStatus(stack.kubeconfig, stack.contexts.prod, kustomization)).lastHandledReconcileAt === asked, 60_000, 250);
    const after = await apps.readNamespacedDeployment({ name: 'delivery-canary', namespace: ns });
    expect([after.spec!.replicas, after.spec!.template.spec!.containers[0].image]).toEqual([copy.spec!.replicas, copy.spec!.template.spec!.containers[0].image]);
    expect(after.spec!.replicas).toBeGreaterThan(0);
    expect((await apps.readNamespacedDeployment({ name: 'delivery', namespace: ns })).spec!.template.spec!.containers[0].image).toBe(stableBefore);
    expect((await slipway.status(id)).canary!.weight).toBe(50);

    const { type, status } = await outcomeOf(slipway, id);
    expect([type, status.error]).toEqual([undefined, undefined]);
    expect(status.canary).toMatchObject({ environment: 'prod', state: 'promoted' });
    expect(status.canary!.intervals.length).toBeGreaterThan(0);
    const order = status.stages.filter((s) => s.environment === 'prod').map((s) => `${s.id}:${s.state}`);
    expect(order.indexOf('canary:prod:succeeded')).toBeLessThan(order.indexOf('deploy:prod:succeeded'));
    // Promotion went through Git: the stable Deployment Flux applied runs the digest; the copy is gone.
    expect(await fileOn('main', 'overlays/prod/kustomization.yaml')).toContain(status.digest!);
    expect((await apps.readNamespacedDeployment({ name: 'delivery', namespace: ns })).spec!.template.spec!.containers[0].image).toBe(`${stack.registry.url}/prod/delivery@${status.digest}`);
    await expect(apps.readNamespacedDeployment({ name: 'delivery-canary', namespace: ns })).rejects.toMatchObject({ code: 404 });
  } finally {
    loading = false;
    await load;
  }
}, 900_000);
