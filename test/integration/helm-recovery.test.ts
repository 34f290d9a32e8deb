/**
 * A deploy whose Helm was killed inside `upgrade --wait` (its worker was SIGKILLed, and exec.ts makes the kernel end
 * the tool with it) leaves a pending revision nobody will complete, and Helm refuses every later upgrade. The retried
 * attempt of the same run recovers it — uninstalls an abandoned install, rolls an abandoned upgrade back — and
 * deploys once more; a pending revision of another run is never touched. Real Helm on the local kwok cluster.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createChartActivities, createDeployActivities } from '../../activities';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import type { DeployChartInput, DeployChartResult } from '../../model/types';
import { helmHistory, helmProcessesIn, kube, labelNode, uniqueNamespace } from '../deploy-helpers';
import { ROOT, uniqueVersion } from '../helpers';
import { testStack } from '../setup/stack-info';

const stack = testStack();
const credentials = new EnvCredentialStore({ SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username, SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password }, '/nonexistent');
const { helm, cluster } = kube();
const workspace = mkdtempSync(join(tmpdir(), 'slipway-recover-'));
cpSync(join(ROOT, 'services', 'delivery', 'chart'), join(workspace, 'chart'), { recursive: true });
const acts = {
  ...createChartActivities({ deployer: helm, credentials, workspace }),
  ...createDeployActivities({ deployer: helm, cluster, credentials, pollMs: 200, abandonedAfterMs: 3_000 }),
};
const registry = { name: 'dev', type: 'oci' as const, host: stack.registry.url, insecure: true };
const inActivity = <T>(fn: () => Promise<T>): Promise<T> => new MockActivityEnvironment().run(fn);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let chart: DeployChartInput['chart'];
beforeAll(async () => {
  const p = await inActivity(() => acts.packageChart({ service: 'delivery', version: uniqueVersion(), chartPath: 'chart', registry, repository: `charts/recover-${randomBytes(3).toString('hex')}` }));
  chart = { registry, repository: p.repository, digest: p.digest };
}, 120_000);

function input(namespace: string, values: Record<string, unknown> = {}, timeoutMs = 60_000): DeployChartInput {
  const version = uniqueVersion();
  return {
    releaseId: `release:delivery:${version}`,
    runId: randomBytes(8).toString('hex'),
    service: 'delivery',
    version,
    environment: 'qa',
    target: { context: stack.contexts.qa, namespace },
    chart,
    image: { repository: `${stack.registry.url}/delivery`, digest: `sha256:${randomBytes(32).toString('hex')}` },
    values,
    timeoutMs,
    owner: 'ci-bot',
    changeCause: 'helm recovery test',
  };
}

/**
 * Starts a deploy whose pods cannot be scheduled yet (they wait for a node label), kills its Helm with SIGKILL once
 * Helm has recorded the pending revision, and returns the status Helm left behind.
 */
async function abandoned(i: DeployChartInput): Promise<string> {
  const attempt = inActivity(() => acts.deployChart(i)).catch((e: unknown) => e);
  let pid: number | undefined;
  for (let n = 0; n < 300; n++) {
    pid = helmProcessesIn(i.target.namespace)[0];
    const latest = (await helmHistory('qa', i.target.namespace)).at(-1);
    if (pid && latest?.status.startsWith('pending')) break;
    await sleep(200);
  }
  expect(pid).toBeDefined();
  process.kill(pid!, 'SIGKILL');
  await attempt; // the dead tool fails this attempt; its revision stays pending
  const status = (await helmHistory('qa', i.target.namespace)).at(-1)!.status;
  return status;
}

test('an abandoned first install is uninstalled and installed again: one deployed revision', async () => {
  const ns = uniqueNamespace('recover-install');
  const pool = `pool-${ns}`;
  const first = input(ns, { nodeSelector: { 'slipway.dev/pool': pool } });
  expect(await abandoned(first)).toBe('pending-install');

  await labelNode('qa', { 'slipway.dev/pool': pool });
  const r = (await inActivity(() => acts.deployChart(first))) as DeployChartResult;
  expect(r).toMatchObject({ revision: 1, resumed: false, recovered: { revision: 1, status: 'pending-install', action: 'uninstalled' } });
  expect((await helmHistory('qa', ns)).map((h) => [h.revision, h.status])).toEqual([[1, 'deployed']]);
}, 240_000);

test('an abandoned upgrade is rolled back to the last deployed revision, then upgraded once more', async () => {
  const ns = uniqueNamespace('recover-upgrade');
  const pool = `pool-${ns}`;
  await inActivity(() => acts.deployChart(input(ns)));
  const second = input(ns, { nodeSelector: { 'slipway.dev/pool': pool } });
  expect(await abandoned(second)).toBe('pending-upgrade');

  await labelNode('qa', { 'slipway.dev/pool': pool });
  const r = (await inActivity(() => acts.deployChart(second))) as DeployChartResult;
  expect(r).toMatchObject({ revision: 4, resumed: false, recovered: { revision: 2, status: 'pending-upgrade', action: 'rolled-back', to: 1 } });
  const history = await helmHistory('qa', ns);
  // Helm keeps the abandoned revision's record as it was (its rollback supersedes only the deployed one); only the
  // latest revision decides whether Helm accepts an upgrade, and that is the one deployed.
  expect(history.map((h) => [h.revision, h.status])).toEqual([[1, 'superseded'], [2, 'pending-upgrade'], [3, 'superseded'], [4, 'deployed']]);
  expect(history[2].description).toBe('Rollback to 1');
}, 240_000);

test("another run's pending revision is left alone: the deploy waits for it, then gives up retryably", async () => {
  const ns = uniqueNamespace('recover-other');
  const pool = `pool-${ns}`;
  expect(await abandoned(input(ns, { nodeSelector: { 'slipway.dev/pool': pool } }))).toBe('pending-install');
  const other = input(ns, {}, 4_000);
  await expect(inActivity(() => acts.deployChart(other))).rejects.toMatchObject({ type: 'HelmBusyError', nonRetryable: false });
  expect((await helmHistory('qa', ns)).map((h) => [h.revision, h.status])).toEqual([[1, 'pending-install']]);
}, 240_000);
