/**
 * Durability: the worker process (the real `slipway worker`) is killed with SIGKILL during the build and again
 * during the push; a new worker finishes the release. The tag ends up with one image and the recorded digest.
 */
import { temporal } from '@temporalio/proto';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SlipwayClient } from '../../client/client';
import { OciRegistryClient } from '../../activities/registry/oci-client';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { parseConfig, planRelease } from '../../model/plan';
import { deployConfigText, helmHistory, helmProcessesIn, labelNode, uniqueNamespace } from '../deploy-helpers';
import { connectClient, plan, ROOT, sampleConfigText, uniqueVersion } from '../helpers';
import { testStack } from '../setup/stack-info';

const NS = 'slipway-it';
const EventType = temporal.api.enums.v1.EventType;
const PendingState = temporal.api.enums.v1.PendingActivityState;
const stack = testStack();
const CLI = join(ROOT, 'dist', 'client', 'cli.js');
const workerEnv = {
  ...process.env,
  TEMPORAL_ADDRESS: stack.temporal,
  TEMPORAL_NAMESPACE: NS,
  DOCKER_HOST: stack.docker,
  SLIPWAY_BUILDER_ID: 'durability-host',
  SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username,
  SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password,
  SLIPWAY_REGISTRY_OTHER_USERNAME: stack.registry.username,
  SLIPWAY_REGISTRY_OTHER_PASSWORD: stack.registry.password,
  KUBECONFIG: stack.kubeconfig,
};

let slipway: SlipwayClient;
let close: () => Promise<void>;
const children: ChildProcess[] = [];

/** The workers read each release's plan from their own slipway.yaml: the test writes the one its release uses. */
function configFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'slipway-durability-')), 'slipway.yaml');
  writeFileSync(file, text);
  return file;
}

function startWorker(config: string): ChildProcess {
  const child = spawn(process.execPath, [CLI, '--config', config, 'worker', '--role', 'all'], { cwd: ROOT, env: workerEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', () => undefined);
  // A worker started after a timed-out test's cleanup must not keep jest alive (afterAll kills the ones it knows).
  child.unref();
  (child.stderr as unknown as { unref?: () => void }).unref?.();
  children.push(child);
  return child;
}

async function killed(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

async function untilStarted(workflowId: string, activity: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const d = await slipway.handle(workflowId).describe();
    const p = d.raw.pendingActivities?.find((a) => a.activityType?.name === activity);
    if (p?.state === PendingState.PENDING_ACTIVITY_STATE_STARTED) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${activity} never started`);
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npx tsc\` (scripts/install.sh does) before the tests`);
  ({ slipway, close } = await connectClient(NS));
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await close();
});

test('kill -9 during the build and during the push: a new worker finishes, one image per tag, same digest', async () => {
  const input = plan({ service: 'slow' });
  const { workflowId } = await slipway.start(input);
  const config = configFile(sampleConfigText());

  const first = startWorker(config);
  await untilStarted(workflowId, 'buildImage');
  await new Promise((r) => setTimeout(r, 1500));
  await killed(first);

  const second = startWorker(config);
  await untilStarted(workflowId, 'pushImage', 180_000);
  await killed(second);

  startWorker(config);
  const { status, reached } = await slipway.waitFor(workflowId, 'approval', { timeoutMs: 180_000 });
  expect(status.error).toBeUndefined();
  expect(reached).toBe(true);
  await slipway.decide(workflowId, 'approve', { approver: 'alice' });
  const result = await slipway.result(workflowId);
  expect(result.phase).toBe('succeeded');

  const history = await slipway.handle(workflowId).fetchHistory();
  const attempts = (name: string) => {
    const scheduled = new Map<string, string>();
    for (const e of history.events!) {
      if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) scheduled.set(String(e.eventId), e.activityTaskScheduledEventAttributes!.activityType!.name!);
    }
    const started = history.events!.filter(
      (e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED && scheduled.get(String(e.activityTaskStartedEventAttributes!.scheduledEventId)) === name,
    );
    return started.map((e) => Number(e.activityTaskStartedEventAttributes!.attempt));
  };
  // Each killed step was retried (the last attempt is the one that completed); each ran as one activity.
  expect(Math.max(...attempts('buildImage'))).toBeGreaterThanOrEqual(2);
  expect(Math.max(...attempts('pushImage'))).toBeGreaterThanOrEqual(2);
  expect(attempts('buildImage')).toHaveLength(1);
  expect(attempts('pushImage')).toHaveLength(1);

  const reg = new OciRegistryClient({ host: stack.registry.url, name: 'dev' }, new EnvCredentialStore(workerEnv, '/nonexistent'));
  expect((await reg.getManifest('slow', input.version)).digest).toBe(result.digest);
  expect((await reg.getManifest('prod/slow', input.version)).digest).toBe(result.digest);
  const tags: any = await (await reg.request('GET', '/v2/slow/tags/list', { scope: 'repository:slow:pull' })).json();
  expect(tags.tags.filter((t: string) => t === input.version)).toHaveLength(1);
}, 420_000);

test('kill -9 during helm upgrade --wait: Helm dies with the worker, and the new worker recovers the pending install', async () => {
  // Workers left by the test above would take the deploy; only the worker this test kills may.
  for (const c of children) if (c.exitCode === null && c.signalCode === null) await killed(c);
  const ns = uniqueNamespace('kill');
  // Pods wait for a node label nobody has yet, so `helm upgrade --wait` is still waiting when the worker dies.
  const pool = `pool-${ns}`;
  const config = deployConfigText({ ns, qaValues: `{ nodeSelector: { slipway.dev/pool: ${pool} } }`, qaDeploy: '{ timeout: 120s, smoke: [ { type: rollout } ] }' });
  const input = planRelease(parseConfig(config), { service: 'delivery', version: uniqueVersion(), requester: 'ci-bot' });
  const { workflowId } = await slipway.start(input);

  const first = startWorker(configFile(config));
  await untilStarted(workflowId, 'deployChart', 180_000);
  const target = { context: stack.contexts.qa, namespace: `${ns}-qa` };
  // Helm has recorded its pending revision: it is inside `upgrade --wait` now.
  for (let i = 0; i < 100 && !(await helmHistory('qa', target.namespace)).length; i++) await new Promise((r) => setTimeout(r, 200));
  expect((await helmHistory('qa', target.namespace)).map((h) => h.status)).toEqual(['pending-install']);
  await killed(first);

  // Helm died with its worker (no orphan goes on to finish the revision): it stays pending with nobody to complete it.
  await new Promise((r) => setTimeout(r, 2_000));
  expect(helmProcessesIn(target.namespace)).toEqual([]);
  expect((await helmHistory('qa', target.namespace)).map((h) => h.status)).toEqual(['pending-install']);

  // The pods may now be scheduled; the new worker's attempt takes the abandoned install back and installs once more.
  await labelNode('qa', { 'slipway.dev/pool': pool });
  startWorker(configFile(config));
  const { status, reached } = await slipway.waitFor(workflowId, 'approval', { timeoutMs: 240_000 });
  expect(status.error).toBeUndefined();
  expect(reached).toBe(true);
  const deploy = status.stages.find((s) => s.id === 'deploy:qa')!;
  expect(deploy.result).toMatchObject({ revision: 1, resumed: false, recovered: { revision: 1, status: 'pending-install', action: 'uninstalled' } });
  expect((await helmHistory('qa', target.namespace)).map((h) => [h.revision, h.status])).toEqual([[1, 'deployed']]);

  const history = await slipway.handle(workflowId).fetchHistory();
  const scheduled = history.events!.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deployChart');
  expect(scheduled).toHaveLength(1);
  const attempt = history.events!.find((e) => e.activityTaskStartedEventAttributes && String(e.activityTaskStartedEventAttributes.scheduledEventId) === String(scheduled[0].eventId));
  expect(Number(attempt!.activityTaskStartedEventAttributes!.attempt)).toBeGreaterThanOrEqual(2);
  await slipway.abort(workflowId, 'test done', 'alice');
}, 420_000);

