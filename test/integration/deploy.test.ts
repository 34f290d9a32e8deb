/**
 * Kubernetes deploys on the local clusters (kwok with the real kube-apiserver, controller-manager and scheduler;
 * real Helm): a release to QA and production by digest, a production rollout that cannot become ready and is
 * rolled back automatically, an abort after the QA deploy, a release of an existing image (no build), and two
 * releases of one service kept out of one environment at the same time.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SlipwayClient } from '../../client/client';
import { parseConfig, planRelease } from '../../model/plan';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { OciRegistryClient } from '../../activities/registry/oci-client';
import type { ReleaseStatus } from '../../model/types';
import { deployConfigText, helmHistory, kube, uniqueNamespace, type DeployConfigOptions } from '../deploy-helpers';
import { eventually, outcomeOf, runCli, startHarness, terminateRunning, uniqueVersion, type Harness } from '../helpers';
import { realActivities } from '../real-activities';
import { testStack } from '../setup/stack-info';

const NS = 'slipway-it';
const stack = testStack();
const env = { SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username, SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password };
const credentials = new EnvCredentialStore(env, '/nonexistent');

let slipway: SlipwayClient;
let harness: Harness;

beforeAll(async () => {
  harness = await startHarness(NS, realActivities(credentials, 'deploy-host'), 'deploy-host');
  slipway = harness.slipway;
  await terminateRunning(slipway, 'leftover from an earlier run');
});
afterAll(() => harness.stop());

const planFor = (o: DeployConfigOptions, extra: { version?: string; image?: string } = {}) =>
  planRelease(parseConfig(deployConfigText(o)), { service: 'delivery', version: extra.version ?? uniqueVersion(), requester: 'ci-bot', ...(extra.image ? { image: extra.image } : {}) });

async function toApproval(id: string): Promise<ReleaseStatus> {
  const { status, reached } = await slipway.waitFor(id, 'approval', { timeoutMs: 180_000 });
  expect(status.error).toBeUndefined();
  expect(reached).toBe(true);
  return status;
}


async function failureOf(id: string): Promise<{ type?: string; message: string }> {
  const o = await outcomeOf(slipway, id);
  if (!o.type) throw new Error('the release did not fail');
  return { type: o.type, message: o.message ?? '' };
}

const stageOf = (s: ReleaseStatus, id: string) => s.stages.find((x) => x.id === id);

describe('one namespace, releases in sequence', () => {
  const ns = uniqueNamespace('rel');
  let first: ReleaseStatus;

  test('a release goes to QA and production by digest, from the chart in the registry, and is smoke-tested', async () => {
    const input = planFor({ ns });
    const { workflowId } = await slipway.start(input);
    const waiting = await toApproval(workflowId);
    expect(waiting.deployments?.qa).toMatchObject({ revision: 1, previousRevision: 0, state: 'deployed' });
    await slipway.decide(workflowId, 'approve', { approver: 'alice', digest: waiting.digest });
    first = await slipway.result(workflowId);
    expect(first.phase).toBe('succeeded');
    for (const id of ['preflight', 'build', 'push', 'chart', 'deploy:qa', 'smoke:qa', 'approval:prod', 'promote:prod', 'deploy:prod', 'smoke:prod']) {
      expect([id, stageOf(first, id)?.state]).toEqual([id, 'succeeded']);
    }
    expect((stageOf(first, 'smoke:qa')!.result as any).checks.map((c: any) => c.check)).toEqual(['rollout', 'helm-test']);

    // Real Helm releases: one revision each, deployed.
    expect((await helmHistory('qa', `${ns}-qa`)).map((h) => [h.revision, h.status, h.appVersion])).toEqual([[1, 'deployed', input.version]]);
    expect((await helmHistory('prod', ns)).map((h) => [h.revision, h.status])).toEqual([[1, 'deployed']]);

    // Production runs the promoted repository at the scanned digest, never a tag, with the inventory's marks.
    const { cluster } = kube();
    const [w] = await cluster.workloads({ context: stack.contexts.prod, namespace: ns }, 'app.kubernetes.io/instance=delivery');
    expect(w.image).toBe(`${stack.registry.url}/prod/delivery@${first.digest}`);
    expect(w.labels['app.kubernetes.io/version']).toBe(input.version);
    expect(w.annotations['slipway.dev/owner']).toBe('ci-bot');
    expect(w.annotations['slipway.dev/release']).toBe(workflowId);
    expect(w.annotations['kubernetes.io/change-cause']).toContain(input.version);
    expect(w.ready).toBe(2);
    // The rendered chart was checked before the upgrade, the running pods after it (kwok nodes report no imageID).
    expect((stageOf(first, 'deploy:prod')!.result as any).pinned).toEqual({ pods: 2, containers: 2, by: 'spec' });

    // The chart that shipped is the one in the registry, by digest, versioned like the release.
    const reg = new OciRegistryClient({ host: stack.registry.url, name: 'dev' }, credentials);
    expect((await reg.getManifest('charts/delivery', input.version)).digest).toBe(first.chart!.digest);
  }, 300_000);

  test('a production rollout that cannot become ready fails and is rolled back automatically', async () => {
    expect(first?.phase).toBe('succeeded');
    // Every replica asks for more CPU than any node has: the scheduler refuses, the progress deadline passes.
    const input = planFor({ ns, prodValues: '{ resources: { requests: { cpu: "500" }, limits: { cpu: "500" } }, progressDeadlineSeconds: 5 }', prodDeploy: '{ timeout: 25s, smoke: [ { type: rollout } ] }' });
    const { workflowId } = await slipway.start(input);
    const waiting = await toApproval(workflowId);
    await slipway.decide(workflowId, 'approve', { approver: 'alice', digest: waiting.digest });
    const f = await failureOf(workflowId);
    expect([f.type, f.message]).toEqual(['RolloutFailedError', expect.stringMatching(/Insufficient cpu/)]);
    expect(f.message).toMatch(/Insufficient cpu|ProgressDeadlineExceeded/);

    const status = await slipway.status(workflowId);
    expect(status.phase).toBe('failed');
    expect(stageOf(status, 'rollback:prod')).toMatchObject({ state: 'succeeded', result: { action: 'rolled-back', toRevision: 1 } });
    expect(stageOf(status, 'rollback:qa')).toMatchObject({ state: 'succeeded', result: { action: 'rolled-back', toRevision: 1 } });
    expect(status.deployments?.prod.state).toBe('rolled-back');
    // helm history: the good revision, the failed one, and the rollback to the good one.
    const prod = await helmHistory('prod', ns);
    expect(prod.map((h) => [h.revision, h.status])).toEqual([[1, 'superseded'], [2, 'failed'], [3, 'deployed']]);
    expect(prod[2].description).toBe('Rollback to 1');
    const { cluster } = kube();
    const [w] = await cluster.workloads({ context: stack.contexts.prod, namespace: ns }, 'app.kubernetes.io/instance=delivery');
    expect(w.image).toBe(`${stack.registry.url}/prod/delivery@${first.digest}`);
    expect((await helmHistory('qa', `${ns}-qa`)).at(-1)).toMatchObject({ status: 'deployed', description: 'Rollback to 1' });
  }, 300_000);

  test('an existing image is released without a build, and an abort after the QA deploy rolls QA back', async () => {
    expect(first?.phase).toBe('succeeded');
    const before = await helmHistory('qa', `${ns}-qa`);
    const prodBefore = await helmHistory('prod', ns);
    const image = first.references.qa; // 127.0.0.1:5000/delivery:<version of the first release>
    const input = planFor({ ns }, { image });
    expect(input.build).toBeUndefined();
    const { workflowId } = await slipway.start(input);
    const waiting = await toApproval(workflowId);
    expect(stageOf(waiting, 'import')?.state).toBe('succeeded');
    expect(waiting.deployments?.qa).toMatchObject({ revision: before.at(-1)!.revision + 1, state: 'deployed', image: `${stack.registry.url}/delivery@${first.digest}` });

    await slipway.abort(workflowId, 'wrong ticket', 'alice');
    const f = await failureOf(workflowId);
    expect(f.type).toBe('ReleaseAbortedError');
    const status = await slipway.status(workflowId);
    expect(stageOf(status, 'rollback:qa')).toMatchObject({ state: 'succeeded', result: { action: 'rolled-back', toRevision: before.at(-1)!.revision } });
    const after = await helmHistory('qa', `${ns}-qa`);
    expect(after).toHaveLength(before.length + 2);
    expect(after.at(-1)).toMatchObject({ status: 'deployed', description: `Rollback to ${before.at(-1)!.revision}` });
    // Production was never touched.
    expect(await helmHistory('prod', ns)).toEqual(prodBefore);
  }, 300_000);

  test('slipway inventory reads the clusters; slipway release rollback rolls back a finished release (or refuses)', async () => {
    expect(first?.phase).toBe('succeeded');
    const configFile = join(mkdtempSync(join(tmpdir(), 'slipway-deploy-')), 'slipway.yaml');
    writeFileSync(configFile, deployConfigText({ ns }));
    const env = { TEMPORAL_ADDRESS: stack.temporal, TEMPORAL_NAMESPACE: NS, KUBECONFIG: stack.kubeconfig, SLIPWAY_USER: 'oncall' };
    const inv = await runCli(['--config', configFile, '--json', 'inventory'], env);
    expect(inv.code).toBe(0);
    const prodRow = inv.json.rows.find((r: any) => r.environment === 'prod');
    // Production still runs the first release (the failed one was rolled back to it).
    expect(prodRow).toMatchObject({ service: 'delivery', version: first.version, digest: first.digest, owner: 'ci-bot', namespace: ns, ready: '2/2' });

    const firstId = `release:delivery:${first.version}`;
    const unknownEnv = await runCli(['--json', 'release', 'rollback', firstId, '--env', 'staging'], env);
    expect(unknownEnv.code).toBe(2);
    expect(unknownEnv.stderr).toContain('did not deploy to "staging"');

    const rb = await runCli(['--json', 'release', 'rollback', firstId, '--env', 'prod', '--reason', 'bad config in v1'], env);
    expect([rb.code, rb.json?.action]).toEqual([0, 'uninstalled']);
    expect(rb.json.workflowId).toMatch(/^rollback:release:delivery:/);
    // Nothing was installed before the first release: its rollback uninstalls it, with history in Temporal.
    expect(await helmHistory('prod', ns)).toEqual([]);
    const again = await runCli(['--json', 'release', 'rollback', firstId, '--env', 'prod'], env);
    expect([again.code, again.json?.action]).toEqual([0, 'nothing-to-do']);
  }, 300_000);
});

describe('bad input is refused before anything is deployed', () => {
  test('chart outside the repository, values that set the image, unknown environment values: config errors', () => {
    const base = deployConfigText({ ns: 'x' });
    expect(() => parseConfig(base.replace('path: services/delivery/chart', 'path: ../outside/chart'))).toThrow(/services\.delivery\.chart\.path: must not contain "\.\." segments/);
    expect(() => parseConfig(base.replace('values: { replicaCount: 2 }', 'values: { replicaCount: 2, image: { repository: evil.io/x } }'))).toThrow(
      /services\.delivery\.chart\.values\.image: is set by slipway/,
    );
    expect(() => parseConfig(base.replace('environments: { qa: {}', 'environments: { qa: { image: { digest: "sha256:00" } }'))).toThrow(/chart\.environments\.qa\.image: is set by slipway/);
    expect(() => parseConfig(base.replace(`kubeContext: ${stack.contexts.qa}`, 'kubeContext: "--kubeconfig=/etc/x"'))).toThrow(/environments\.qa\.kubeContext: must be a kube context name/);
  });

  test('a missing chart is refused by the CLI before the release starts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'slipway-nochart-'));
    writeFileSync(join(dir, 'slipway.yaml'), deployConfigText({ ns: 'x' }).replace('path: services/delivery/chart', 'path: charts/missing'));
    const version = uniqueVersion();
    const r = await runCli(['--config', join(dir, 'slipway.yaml'), 'release', 'start', '--service', 'delivery', '--version', version], { TEMPORAL_ADDRESS: stack.temporal, TEMPORAL_NAMESPACE: NS });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('services.delivery.chart.path: no Helm chart at "charts/missing"');
    await expect(slipway.handle(`release:delivery:${version}`).describe()).rejects.toThrow(/not found/i);
  });

  test('an unknown kube context fails the preflight: nothing is built, pushed or deployed', async () => {
    const input = planFor({ ns: uniqueNamespace('ctx'), qaContext: 'kwok-nowhere' });
    const { workflowId } = await slipway.start(input);
    const f = await failureOf(workflowId);
    expect(f.type).toBe('ClusterConfigError');
    expect(f.message).toContain('kube context "kwok-nowhere" is not in the kubeconfig');
    const status = await slipway.status(workflowId);
    expect(stageOf(status, 'preflight')?.state).toBe('failed');
    expect(['build', 'push', 'chart', 'deploy:qa'].map((id) => stageOf(status, id)?.state)).toEqual(['skipped', 'skipped', 'skipped', 'skipped']);
    const reg = new OciRegistryClient({ host: stack.registry.url, name: 'dev' }, credentials);
    await expect(reg.getManifest('delivery', input.version)).rejects.toThrow(/not found/);
  }, 120_000);
});

describe('one release per service per environment', () => {
  test('a second release waits for the first to leave QA: their deploys do not overlap', async () => {
    const ns = uniqueNamespace('lock');
    const image = `${stack.registry.url}/delivery@${await anyPushedDigest()}`;
    // A slow rollout (pods must stay ready 6 s) so the two would overlap without the lock.
    const o = { ns, qaValues: '{ minReadySeconds: 6 }' };
    const a = await slipway.start(planFor(o, { image }));
    const b = await slipway.start(planFor(o, { image }));
    const [sa, sb] = [await toApproval(a.workflowId), await toApproval(b.workflowId)];
    const lockOf = (s: ReleaseStatus) => (stageOf(s, 'deploy:qa')!.result as any).lock;
    const [firstIn, second] = lockOf(sa).waitedFor ? [sb, sa] : [sa, sb];
    expect(lockOf(second).waitedFor).toBe(firstIn === sa ? a.workflowId : b.workflowId);
    expect(lockOf(second).waitedMs).toBeGreaterThan(1000);
    // The second upgrade started only after the first release's smoke test had finished.
    const history = await helmHistory('qa', `${ns}-qa`);
    expect(history.map((h) => h.revision)).toEqual([1, 2]);
    expect(Date.parse(history[1].updated)).toBeGreaterThanOrEqual(Date.parse(stageOf(firstIn, 'smoke:qa')!.endedAt!));
    for (const id of [a.workflowId, b.workflowId]) await slipway.abort(id, 'test done', 'alice');
  }, 300_000);

  test('with whenBusy: refuse, the second release is refused before it deploys anything', async () => {
    const ns = uniqueNamespace('refuse');
    const image = `${stack.registry.url}/delivery@${await anyPushedDigest()}`;
    const o = { ns, qaValues: '{ minReadySeconds: 12 }', qaDeploy: '{ timeout: 60s, whenBusy: refuse, smoke: [ { type: rollout } ] }' };
    const a = await slipway.start(planFor(o, { image }));
    // A holds QA from the start of its deploy stage until its smoke test is done.
    await eventually(async () => stageOf(await slipway.status(a.workflowId), 'deploy:qa')?.state === 'running', 60_000);
    await new Promise((r) => setTimeout(r, 1500));
    const b = await slipway.start(planFor(o, { image }));
    const f = await failureOf(b.workflowId);
    expect(f.type).toBe('EnvironmentBusyError');
    expect(f.message).toContain(a.workflowId);
    const sb = await slipway.status(b.workflowId);
    expect(sb.deployments).toBeUndefined();
    expect(stageOf(sb, 'rollback:qa')).toBeUndefined();
    await toApproval(a.workflowId);
    expect((await helmHistory('qa', `${ns}-qa`)).map((h) => h.revision)).toEqual([1]);
    await slipway.abort(a.workflowId, 'test done', 'alice');
  }, 300_000);
});

/** A digest of the sample image in the registry (pushed by the first test, or by any earlier run). */
async function anyPushedDigest(): Promise<string> {
  const reg = new OciRegistryClient({ host: stack.registry.url, name: 'dev' }, credentials);
  const tags: any = await (await reg.request('GET', '/v2/delivery/tags/list', { scope: 'repository:delivery:pull' })).json();
  const tag = (tags.tags as string[]).find((t) => t.startsWith('v'))!;
  return (await reg.getManifest('delivery', tag)).digest;
}
