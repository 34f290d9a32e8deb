/**
 * Canary analysis end to end on real components: releases built by the Docker engine, deployed by Helm to the local
 * clusters, a canary Deployment beside the stable one, and measurements from a real Prometheus judged by the workflow.
 *
 * kwok's pods run nothing, so — as the README says — the traffic that is measured comes from containers of the very
 * images the releases built (baseline: the stable release's image; canary: the new release's), run by the Docker
 * engine on the host network, scraped by Prometheus with `track` labels, under local load from this test.
 */
import type Docker from 'dockerode';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SlipwayClient } from '../../client/client';
import { parseConfig, planRelease } from '../../model/plan';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { findBinary, portOpen, waitFor } from '../../client/stack/process';
import { dockerFromEnv } from '../../workers/builder';
import type { ReleaseStatus } from '../../model/types';
import { canaryText, deployConfigText, helmHistory, kube, uniqueNamespace } from '../deploy-helpers';
import { eventually, outcomeOf, startHarness, terminateRunning, uniqueVersion, type Harness } from '../helpers';
import { realActivities } from '../real-activities';
import { releaseIsRunning } from '../../activities';
import { testStack } from '../setup/stack-info';

const NS = 'slipway-it';
const stack = testStack();
const PROM_PORT = 19093;
const PORTS = { baseline: 18511, canary: 18512 };
const docker: Docker = dockerFromEnv({ DOCKER_HOST: stack.docker });
const credentials = new EnvCredentialStore({ SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username, SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password }, '/nonexistent');
const ns = uniqueNamespace('canary');
const STEPS = '[ { setWeight: 25 }, { analysis: { duration: 6s, interval: 3s } }, { setWeight: 50 }, { analysis: { duration: 6s, interval: 3s } } ]';

let slipway: SlipwayClient;
let harness: Harness;
let prometheus: ChildProcess;
const containers: Record<string, Docker.Container | undefined> = {};
let loading = true;
let load: Promise<void>;

beforeAll(async () => {
  // A lock left by a release that no longer runs (an earlier, interrupted run) is taken over, as in production.
  harness = await startHarness(NS, realActivities(credentials, 'canary-host', {}, { holderActive: releaseIsRunning }), 'canary-host');
  slipway = harness.slipway;
  await terminateRunning(slipway, 'leftover from an earlier run');
  const dir = mkdtempSync(join(tmpdir(), 'slipway-canary-prom-'));
  const scrape = Object.entries(PORTS).map(([track, port]) => `      - targets: ["127.0.0.1:${port}"]\n        labels: { track: ${track} }`).join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), `global: { scrape_interval: 1s, evaluation_interval: 1s }\nscrape_configs:\n  - job_name: delivery\n    static_configs:\n${scrape}\n`);
  prometheus = spawn(findBinary('prometheus')!, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${PROM_PORT}`], { stdio: 'ignore' });
  await waitFor('prometheus', () => portOpen(PROM_PORT), 30_000);
  // Local load on both tracks, ~20 requests/s each, for as long as the tests run (loopback only).
  load = (async () => {
    while (loading) {
      await Promise.all(Object.values(PORTS).flatMap((p) => Array.from({ length: 4 }, () => fetch(`http://127.0.0.1:${p}/api/deliveries`).then((r) => r.text()).catch(() => undefined))));
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
}, 60_000);

afterAll(async () => {
  loading = false;
  await load;
  for (const c of Object.values(containers)) await c?.remove({ force: true }).catch(() => undefined);
  prometheus?.kill('SIGKILL');
  await harness.stop();
});

/** Runs `image` as the track's process (host network, the port Prometheus scrapes), replacing what ran there. */
async function runTrack(track: 'baseline' | 'canary', image: string, env: Record<string, string> = {}): Promise<void> {
  await containers[track]?.remove({ force: true }).catch(() => undefined);
  const c = await docker.createContainer({
    Image: image,
    // A 5 ms handler: the sample's own work takes microseconds, which scheduler noise on 2 cores would dominate.
    Env: [`LISTEN=127.0.0.1:${PORTS[track]}`, `VERSION=${track}`, 'LATENCY_MS=5', ...Object.entries(env).map(([k, v]) => `${k}=${v}`)],
    HostConfig: { NetworkMode: 'host' },
    Labels: { 'slipway.test': 'canary' },
  });
  await c.start();
  containers[track] = c;
  await waitFor(`${track} container`, () => portOpen(PORTS[track]), 10_000);
  // A few scrapes of the new process before anyone measures it.
  await new Promise((r) => setTimeout(r, 3000));
}

const config = (steps = STEPS) =>
  deployConfigText({ ns, approval: '{ approvers: [alice] }', prodCanary: canaryText({ prometheus: `http://127.0.0.1:${PROM_PORT}`, steps, decisionTimeout: '20s' }), qaDeploy: '{ timeout: 60s, smoke: [ { type: rollout } ] }' });
const start = (steps?: string) => slipway.start(planRelease(parseConfig(config(steps)), { service: 'delivery', version: uniqueVersion(), requester: 'ci-bot' }));

/** Waits for the gate; the release's image is built by then, so its container can start before approving. */
async function atApproval(id: string): Promise<ReleaseStatus> {
  const { status, reached } = await slipway.waitFor(id, 'approval', { timeoutMs: 180_000 });
  expect(status.error).toBeUndefined();
  expect(reached).toBe(true);
  return status;
}


const localTag = (s: ReleaseStatus) => `${stack.registry.url}/delivery:${s.version}`; // the tag the build left in the engine
let stable: ReleaseStatus;

test('the first release has no baseline: it is deployed directly and becomes the stable one', async () => {
  const { workflowId } = await start();
  await atApproval(workflowId);
  await slipway.decide(workflowId, 'approve', { approver: 'alice' });
  const { type, status } = await outcomeOf(slipway, workflowId);
  expect(type).toBeUndefined();
  expect(status.stages.find((s) => s.id === 'canary:prod')).toMatchObject({ state: 'skipped', result: { note: expect.stringContaining('no baseline') } });
  stable = status;
  await runTrack('baseline', localTag(stable));
}, 300_000);

test('a healthy canary is promoted: weights stepped, every interval judged Pass, the new image becomes stable', async () => {
  expect(stable?.phase).toBe('succeeded');
  const { workflowId } = await start();
  const waiting = await atApproval(workflowId);
  await runTrack('canary', localTag(waiting));
  await slipway.decide(workflowId, 'approve', { approver: 'alice' });
  // While the analysis runs, the canary Deployment is beside the stable one in the production cluster.
  const during = await eventually(async () => {
    const s = await slipway.status(workflowId);
    return (s.canary?.intervals.length ?? 0) > 0 ? s : undefined;
  }, 120_000);
  const { cluster } = kube();
  const [canaryDeployment] = await cluster.workloads({ context: stack.contexts.prod, namespace: ns }, 'track=canary');
  expect(canaryDeployment?.image).toBe(`${stack.registry.url}/prod/delivery@${during.digest}`);

  const { type, status } = await outcomeOf(slipway, workflowId);
  expect([type, status.error]).toEqual([undefined, undefined]);
  expect(status.canary).toMatchObject({ state: 'promoted', weight: 50 });
  expect(status.canary!.intervals.map((i) => i.result)).toEqual(['Pass', 'Pass', 'Pass', 'Pass']);
  expect(status.canary!.intervals.map((i) => i.weight)).toEqual([33, 33, 50, 50]);
  const history = await helmHistory('prod', ns);
  expect(history.at(-1)).toMatchObject({ status: 'deployed', appVersion: status.version });
  expect(await cluster.workloads({ context: stack.contexts.prod, namespace: ns }, 'track=canary')).toEqual([]);
  const [w] = await cluster.workloads({ context: stack.contexts.prod, namespace: ns }, 'app.kubernetes.io/instance=delivery');
  expect(w.image).toBe(`${stack.registry.url}/prod/delivery@${status.digest}`);

  // Every measurement is in the history: the measureCanary results carry both tracks' series.
  const events = (await slipway.handle(workflowId).fetchHistory()).events!;
  const measured = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'measureCanary');
  expect(measured).toHaveLength(4);
  stable = status;
  await runTrack('baseline', localTag(stable));
}, 300_000);

test('a canary with a higher error rate is rolled back automatically; production keeps the stable release', async () => {
  expect(stable?.phase).toBe('succeeded');
  const before = await helmHistory('prod', ns);
  const { workflowId } = await start();
  const waiting = await atApproval(workflowId);
  await runTrack('canary', localTag(waiting), { ERROR_RATE: '0.3' });
  await slipway.decide(workflowId, 'approve', { approver: 'alice' });
  const { type, status } = await outcomeOf(slipway, workflowId);
  expect(type).toBe('CanaryFailedError');
  expect(status.error).toMatch(/canary failed analysis: score .* ≤ marginal 75 \(errors High/);
  expect(status.canary).toMatchObject({ state: 'rolled-back' });
  // Rolled back at the first interval whose data was enough to tell (a few points cannot reach 98 % confidence).
  const failing = status.canary!.intervals.at(-1)!;
  expect(failing).toMatchObject({ result: 'Fail' });
  expect(failing.metrics.find((m) => m.name === 'errors')?.classification).toBe('High');
  expect(status.canary!.intervals.slice(0, -1).every((i) => i.score > 75)).toBe(true);
  // Helm never changed in production; the canary is gone; the stable image still runs.
  expect(await helmHistory('prod', ns)).toEqual(before);
  const { cluster } = kube();
  expect(await cluster.workloads({ context: stack.contexts.prod, namespace: ns }, 'track=canary')).toEqual([]);
  const [w] = await cluster.workloads({ context: stack.contexts.prod, namespace: ns }, 'app.kubernetes.io/instance=delivery');
  expect(w.image).toBe(`${stack.registry.url}/prod/delivery@${stable.digest}`);
}, 300_000);

test('a canary with higher latency is judged inconclusive (latency weighs 20 %); nobody decides, so it is rolled back', async () => {
  expect(stable?.phase).toBe('succeeded');
  const { workflowId } = await start('[ { setWeight: 50 }, { analysis: { duration: 9s, interval: 3s } } ]');
  const waiting = await atApproval(workflowId);
  await runTrack('canary', localTag(waiting), { LATENCY_MS: '15' });
  await slipway.decide(workflowId, 'approve', { approver: 'alice' });
  const { type, status } = await outcomeOf(slipway, workflowId);
  expect(type).toBe('CanaryFailedError');
  expect(status.error).toMatch(/canary inconclusive \(score 80\.0\) and no decision within 20000 ms/);
  const last = status.canary!.intervals.at(-1)!;
  expect(last.metrics.find((m) => m.name === 'latency')).toMatchObject({ classification: 'High' });
  expect(last.metrics.find((m) => m.name === 'latency')!.deviation).toBeGreaterThan(2);
  expect(status.canary?.state).toBe('rolled-back');
}, 300_000);

test('an abort in the middle of the analysis rolls the canary back', async () => {
  const { workflowId } = await start('[ { setWeight: 20 }, { analysis: { duration: 120s, interval: 3s } } ]');
  const waiting = await atApproval(workflowId);
  await runTrack('canary', localTag(waiting));
  await slipway.decide(workflowId, 'approve', { approver: 'alice' });
  await eventually(async () => ((await slipway.status(workflowId)).canary?.intervals.length ?? 0) >= 1, 120_000);
  await slipway.abort(workflowId, 'wrong build', 'ci-bot');
  const { type, status } = await outcomeOf(slipway, workflowId);
  expect(type).toBe('ReleaseAbortedError');
  expect(status.canary?.state).toBe('rolled-back');
  const { cluster } = kube();
  expect(await cluster.workloads({ context: stack.contexts.prod, namespace: ns }, 'track=canary')).toEqual([]);
}, 300_000);
