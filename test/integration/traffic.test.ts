/**
 * Canary traffic on a real API server (the local production cluster): the canary copy of a Helm-deployed
 * Deployment, replica-ratio weights, and weight patches of Gateway API HTTPRoutes and Istio VirtualServices
 * (their CRDs registered by the stack), then removal.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { helmOptionsFromEnv } from '../../activities/helm/helm';
import { k8s } from '../../activities/kubernetes/client';
import { ApplicationFailure } from '@temporalio/common';
import { createCanaryActivities } from '../../activities/canary';
import { CanaryPlanError, KubeCanary } from '../../activities/kubernetes/canary';
import { kube, uniqueNamespace } from '../deploy-helpers';
import { eventually, ROOT } from '../helpers';
import { testStack } from '../setup/stack-info';

const run = promisify(execFile);
const { cluster } = kube();
const canaries = new KubeCanary(cluster);
const target = { context: testStack().contexts.prod, namespace: uniqueNamespace('traffic') };
const custom = () => cluster.api(target.context, k8s.CustomObjectsApi);
const NEW = `127.0.0.1:5000/prod/delivery@sha256:${'1'.repeat(64)}`;

beforeAll(async () => {
  const values = join(mkdtempSync(join(tmpdir(), 'slipway-traffic-')), 'values.json');
  writeFileSync(values, JSON.stringify({ image: { repository: '127.0.0.1:5000/prod/delivery', digest: `sha256:${'0'.repeat(64)}` } }));
  await run(helmOptionsFromEnv().binary, ['upgrade', 'delivery', join(ROOT, 'services', 'delivery', 'chart'), '--install', '--kube-context', target.context, '--namespace', target.namespace, '--create-namespace', '--values', values, '--wait'], {
    env: process.env,
  });
}, 120_000);

test('replicas: the canary copies the stable Deployment with the new image, scales to the weight, and goes away', async () => {
  const started = await canaries.start(target, 'delivery', NEW, { 'slipway.dev/release': 'release:delivery:v9' });
  expect(started).toMatchObject({ canary: 'delivery-canary', stableReplicas: 2, stableImage: `127.0.0.1:5000/prod/delivery@sha256:${'0'.repeat(64)}` });
  const [c] = await cluster.workloads(target, 'track=canary');
  expect(c).toMatchObject({ name: 'delivery-canary', image: NEW, replicas: 0 });
  expect(c.labels['app.kubernetes.io/managed-by']).toBe('slipway');
  // Started again (a retried activity): the same canary, updated, not a second one.
  await canaries.start(target, 'delivery', NEW, { 'slipway.dev/release': 'release:delivery:v9' });
  expect(await cluster.workloads(target, 'track=canary')).toHaveLength(1);

  // 25 % with 2 stable replicas: ceil(2 × 25 / 75) = 1 canary pod, so 33 % in effect.
  expect(await canaries.setWeight(target, 'delivery', { type: 'replicas' }, 25, 2)).toEqual({ weight: 33, canaryReplicas: 1 });
  await eventually(async () => (await cluster.rollout(target, 'delivery-canary')).available === 1, 30_000);
  // The stable Deployment (Helm's) was not touched.
  expect((await cluster.rollout(target, 'delivery')).replicas).toBe(2);

  await canaries.remove(target, 'delivery', { type: 'replicas' });
  expect(await cluster.workloads(target, 'track=canary')).toEqual([]);
  await canaries.remove(target, 'delivery', { type: 'replicas' }); // idempotent
}, 60_000);

test('gateway-api and istio: the route weights are rewritten on the API server; a route without a canary backend is refused', async () => {
  const ns = target.namespace;
  await custom().createNamespacedCustomObject({
    group: 'gateway.networking.k8s.io', version: 'v1', namespace: ns, plural: 'httproutes',
    body: { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'delivery' }, spec: { rules: [{ backendRefs: [{ name: 'delivery-stable', port: 80, weight: 100 }, { name: 'delivery-canary', port: 80, weight: 0 }] }] } },
  });
  await custom().createNamespacedCustomObject({
    group: 'networking.istio.io', version: 'v1', namespace: ns, plural: 'virtualservices',
    body: { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'delivery' }, spec: { hosts: ['delivery'], http: [{ route: [{ destination: { host: 'delivery-stable' }, weight: 100 }, { destination: { host: 'delivery-canary' }, weight: 0 }] }] } },
  });
  await canaries.start(target, 'delivery', NEW, {});

  expect(await canaries.setWeight(target, 'delivery', { type: 'gateway-api', route: 'delivery' }, 30, 2)).toEqual({ weight: 30, canaryReplicas: 2 });
  const route: any = await custom().getNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', namespace: ns, plural: 'httproutes', name: 'delivery' });
  expect(route.spec.rules[0].backendRefs.map((b: any) => [b.name, b.weight])).toEqual([['delivery-stable', 70], ['delivery-canary', 30]]);

  await canaries.setWeight(target, 'delivery', { type: 'istio', virtualService: 'delivery' }, 60, 2);
  const vs: any = await custom().getNamespacedCustomObject({ group: 'networking.istio.io', version: 'v1', namespace: ns, plural: 'virtualservices', name: 'delivery' });
  expect(vs.spec.http[0].route.map((r: any) => [r.destination.host, r.weight])).toEqual([['delivery-stable', 40], ['delivery-canary', 60]]);

  // The canary's own Service selects canary pods only (the router's canary backend).
  const svc = await cluster.api(target.context, k8s.CoreV1Api).readNamespacedService({ name: 'delivery-canary', namespace: ns });
  expect(svc.spec?.selector).toMatchObject({ 'app.kubernetes.io/instance': 'delivery', track: 'canary' });

  await canaries.remove(target, 'delivery', { type: 'gateway-api', route: 'delivery' });
  const after: any = await custom().getNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', namespace: ns, plural: 'httproutes', name: 'delivery' });
  expect(after.spec.rules[0].backendRefs.map((b: any) => b.weight)).toEqual([100, 0]);

  await custom().createNamespacedCustomObject({
    group: 'gateway.networking.k8s.io', version: 'v1', namespace: ns, plural: 'httproutes',
    body: { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'no-canary' }, spec: { rules: [{ backendRefs: [{ name: 'delivery-stable', port: 80 }] }] } },
  });
  await canaries.start(target, 'delivery', NEW, {});
  await expect(canaries.setWeight(target, 'delivery', { type: 'gateway-api', route: 'no-canary' }, 10, 2)).rejects.toThrow(/needs a backend for delivery-canary/);
  await canaries.remove(target, 'delivery', { type: 'replicas' });
}, 60_000);

test('item 11: a weight the stable replica count cannot express is refused at canary start, before anything is created', async () => {
  const plan = { traffic: { type: 'replicas' as const }, weights: [{ step: 0, weight: 25 }, { step: 2, weight: 99 }] };
  const err = await canaries.start(target, 'delivery', NEW, {}, plan).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(CanaryPlanError);
  expect((err as Error).message).toMatch(/canary\.steps\.2\.setWeight: 99 % cannot be expressed by replica ratio with 2 stable replicas: it needs 198 canary pods.*33 %, 50 %/);
  expect((err as Error).message).not.toMatch(/steps\.0/);
  expect(await cluster.workloads(target, 'track=canary')).toEqual([]);

  // Through the activity: invalid input, never retried (the replica count will not change by itself).
  const acts = createCanaryActivities({ canaries, metrics: () => { throw new Error('unused'); } });
  const failure = await acts.startCanary({ releaseId: 'release:delivery:v9', service: 'delivery', environment: 'prod', target, image: NEW, ...plan }).catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(ApplicationFailure);
  expect(failure).toMatchObject({ type: 'InvalidInputError', nonRetryable: true });
  expect(await cluster.workloads(target, 'track=canary')).toEqual([]);

  // Route weights carry any percentage: the same steps start a gateway-api canary.
  await canaries.start(target, 'delivery', NEW, {}, { ...plan, traffic: { type: 'gateway-api', route: 'delivery' } });
  expect(await cluster.workloads(target, 'track=canary')).toHaveLength(1);
  await canaries.remove(target, 'delivery', { type: 'replicas' });

  // A route that does not exist (a stable release installed without it) cannot carry a canary: refused before
  // anything is created, instead of failing at the first weight after the canary's pods were started.
  const missing = await canaries.start(target, 'delivery', NEW, {}, { ...plan, traffic: { type: 'gateway-api', route: 'gone' } }).catch((e: unknown) => e);
  expect(missing).toBeInstanceOf(CanaryPlanError);
  expect((missing as Error).message).toMatch(/the canary of delivery cannot start: httproutes\/gone does not exist in /);
  expect(await cluster.workloads(target, 'track=canary')).toEqual([]);
}, 60_000);
