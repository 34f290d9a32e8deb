/**
 * The `http` smoke check on real pods (issue #12): releases of the sample service whose production pods run on the
 * prod cluster's real node are smoke-tested through their Service (the worker resolves `delivery.<ns>.svc` through
 * the cluster's API to the Service's ready endpoints: the host has no route to ClusterIPs, see
 * docs/local-kubernetes.md) and through the Gateway (Traefik's web entrypoint on 127.0.0.1 with the route's Host).
 * A release whose /healthz answers 503 (the sample's HEALTH_STATUS build arg) fails its production smoke test and is
 * rolled back, as Helm's history shows. Traffic goes only to 127.0.0.1 and to the pod addresses of the node's own
 * network namespace (issue #12's network rule).
 */
import { request } from 'node:http';
import type { SlipwayClient } from '../../client/client';
import { parseConfig, planRelease } from '../../model/plan';
import { k8s } from '../../activities/kubernetes/client';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { ensureRealNode, nodeLayout, REAL_NODE_PLACEMENT } from '../../client/stack/node';
import { ensureRouter, routerPorts } from '../../client/stack/router';
import type { ReleaseStatus } from '../../model/types';
import { deployConfigText, helmHistory, kube, uniqueNamespace } from '../deploy-helpers';
import { eventually, outcomeOf, startHarness, terminateRunning, uniqueVersion, type Harness } from '../helpers';
import { realActivities } from '../real-activities';
import { releaseIsRunning } from '../../activities';
import { testStack } from '../setup/stack-info';

const NS = 'slipway-it';
const stack = testStack();
const WEB = routerPorts('prod').web;
const credentials = new EnvCredentialStore({ SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username, SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password }, '/nonexistent');
const ns = uniqueNamespace('smoke-real');
const HOST = `${ns}.slipway.test`;

let slipway: SlipwayClient;
let harness: Harness;

/**
 * The probes on /metrics ("the process answers"): with the chart's default /healthz probes a 503 /healthz keeps the
 * pods unready and Helm's --wait fails the deploy before any smoke test; here /healthz is the deeper check that
 * only the smoke test asks.
 */
const prodValues = JSON.stringify({ ...REAL_NODE_PLACEMENT, route: { enabled: true, hostnames: [HOST] }, probes: { path: '/metrics' } });
// Production's http checks: the default (through the Service, resolved by the cluster API) and through the Gateway.
const prodDeploy = `{ timeout: 90s, smoke: [ { type: rollout }, { type: http, timeout: 20s }, { type: http, url: "http://127.0.0.1:${WEB}/healthz", headers: { Host: "${HOST}" }, timeout: 20s } ] }`;

function start(o: { buildArgs?: string } = {}) {
  const version = uniqueVersion();
  const text = deployConfigText({ ns, prodValues, prodDeploy, qaDeploy: '{ timeout: 60s, smoke: [ { type: rollout } ] }' })
    .replace('args: { VERSION: test }', `args: { VERSION: "${version}"${o.buildArgs ?? ''} }`);
  return slipway.start(planRelease(parseConfig(text), { service: 'delivery', version, requester: 'ci-bot' }));
}

async function approve(id: string): Promise<void> {
  const { status, reached } = await slipway.waitFor(id, 'approval', { timeoutMs: 180_000 });
  expect(status.error).toBeUndefined();
  expect(reached).toBe(true);
  await slipway.decide(id, 'approve', { approver: 'alice' });
}

/**
 * GET /healthz through Traefik's web entrypoint with a Host: the status, or 0 when nothing answered. node:http, not
 * fetch: fetch (undici) does not send a Host header of the caller's (it answered 404 here: no route for 127.0.0.1).
 */
const viaGateway = (host = HOST) =>
  new Promise<number>((resolve) => {
    const req = request({ host: '127.0.0.1', port: WEB, path: '/healthz', headers: { host }, agent: false, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });

const core = () => kube().cluster.api(stack.contexts.prod, k8s.CoreV1Api);
const stageOf = (s: ReleaseStatus, id: string) => s.stages.find((x) => x.id === id);

beforeAll(async () => {
  harness = await startHarness(NS, realActivities(credentials, 'smoke-real-host', {}, { holderActive: releaseIsRunning }), 'smoke-real-host');
  slipway = harness.slipway;
  await terminateRunning(slipway, 'leftover from an earlier run');
  await ensureRealNode('prod', stack.registry);
  await ensureRouter('prod', { kubeconfig: stack.kubeconfig, context: stack.contexts.prod });
}, 120_000);

afterAll(async () => {
  for (const [context, name] of [[stack.contexts.prod, ns], [stack.contexts.qa, `${ns}-qa`]]) {
    await kube().cluster.api(context, k8s.CoreV1Api).deleteNamespace({ name }).catch(() => undefined);
  }
  await harness?.stop();
});

let healthy: ReleaseStatus;

test('a release on the real node passes its http smoke checks through the Service and through the Gateway', async () => {
  const { workflowId } = await start();
  await approve(workflowId);
  const { type, status } = await outcomeOf(slipway, workflowId);
  expect([type, status.error]).toEqual([undefined, undefined]);
  healthy = status;
  for (const id of ['deploy:qa', 'approval:prod', 'promote:prod', 'deploy:prod', 'smoke:prod']) expect([id, stageOf(status, id)?.state]).toEqual([id, 'succeeded']);

  // The pods really run on the real node, at addresses of its pod range (what the Service check called).
  const pods = (await core().listNamespacedPod({ namespace: ns, labelSelector: 'app.kubernetes.io/instance=delivery' })).items.filter((p) => !p.metadata?.deletionTimestamp);
  expect(pods.map((p) => p.spec?.nodeName)).toEqual([nodeLayout('prod').nodeName, nodeLayout('prod').nodeName]);
  const range = nodeLayout('prod').podCidr.replace(/\.0\/24$/, '.');
  expect(pods.every((p) => p.status?.podIP?.startsWith(range))).toBe(true);
  const svc = await core().readNamespacedService({ name: 'delivery', namespace: ns });

  const checks = (stageOf(status, 'smoke:prod')!.result as { checks: { check: string; detail: string }[] }).checks;
  console.log(`smoke:prod ${JSON.stringify(checks.map((c) => c.detail), null, 1)}`);
  expect(checks.map((c) => c.check)).toEqual(['rollout', 'http', 'http']);
  expect(checks[1].detail).toBe(`GET http://delivery.${ns}.svc/healthz answered 200 from all 2 ready endpoints of Service ${ns}/delivery (ClusterIP ${svc.spec?.clusterIP}:80 → target port http)`);
  expect(checks[2].detail).toBe(`GET http://127.0.0.1:${WEB}/healthz (Host: ${HOST}) answered 200`);
  // Independently of slipway: the route answers through Traefik, and a Host no route names does not.
  expect(await viaGateway()).toBe(200);
  expect(await viaGateway(`no-route.${HOST}`)).toBe(404);
}, 300_000);

test('a release whose /healthz answers 503 fails its production smoke test and is rolled back', async () => {
  expect(healthy?.phase).toBe('succeeded');
  const before = await helmHistory('prod', ns);
  expect(before.at(-1)).toMatchObject({ status: 'deployed', appVersion: healthy.version });
  const { workflowId } = await start({ buildArgs: ', HEALTH_STATUS: "503"' });
  await approve(workflowId);
  const { type, status } = await outcomeOf(slipway, workflowId);
  console.log(`503 release: ${status.error}`);
  expect(type).toBe('SmokeTestFailedError');
  // The new release was deployed (its probes pass), and only the smoke test saw the health endpoint fail.
  expect(stageOf(status, 'deploy:prod')?.state).toBe('succeeded');
  expect(stageOf(status, 'smoke:prod')?.state).toBe('failed');
  expect(status.error).toMatch(
    new RegExp(`smoke test "http" failed for delivery in prod: GET http://delivery\\.${ns}\\.svc/healthz: 2/2 ready endpoints of Service ${ns}/delivery \\(ClusterIP [0-9.]+:80 → target port http\\) failed: .*answered 503, expected 200`),
  );
  expect(status.deployments?.prod).toMatchObject({ state: 'rolled-back' });
  expect(stageOf(status, 'rollback:prod')?.state).toBe('succeeded');

  // Helm's history: the 503 revision, then a rollback to the healthy one, which is what runs now.
  const after = await helmHistory('prod', ns);
  console.log(`prod history: ${JSON.stringify(after.map((r) => [r.revision, r.status, r.appVersion, r.description]))}`);
  expect(after).toHaveLength(before.length + 2);
  expect(after.at(-2)).toMatchObject({ status: 'superseded', appVersion: status.version });
  expect(after.at(-1)).toMatchObject({ status: 'deployed', appVersion: healthy.version, description: expect.stringMatching(new RegExp(`^Rollback to ${before.at(-1)!.revision}`)) });
  // And the healthy release answers again, through the Gateway, once the rolled-back pods are ready.
  await eventually(async () => (await viaGateway()) === 200, 60_000, 500);
}, 400_000);
