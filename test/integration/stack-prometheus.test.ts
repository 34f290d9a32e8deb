/**
 * The stack's own Prometheus (client/stack/prometheus.ts, 3.16 built by tools/prometheus/build.sh): a pod of the
 * sample image on prod's real node, annotated like the sample chart's pods, is discovered through the API server
 * (kubernetes_sd_configs, role pod) and scraped at its pod IP with the labels cluster, namespace, pod and track; a pod
 * on a kwok node, annotated the same, is not a target (its address is fake); and prod's Traefik is scraped, with its
 * per-service request counter for the pod's Service behind an HTTPRoute. Loopback and the node's pod addresses only.
 */
import Docker from 'dockerode';
import { request } from 'node:http';
import { join } from 'node:path';
import { DockerImageBuilder } from '../../activities/docker/builder';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { k8s } from '../../activities/kubernetes/client';
import { KubeCluster } from '../../activities/kubernetes/cluster';
import { ensureRealNode, REAL_NODE_PLACEMENT, type RealNodeEndpoint } from '../../client/stack/node';
import { ensurePrometheus, PROMETHEUS_VERSION } from '../../client/stack/prometheus';
import { ensureRouter, GATEWAY, routerPorts, type RouterEndpoint } from '../../client/stack/router';
import { uniqueNamespace } from '../deploy-helpers';
import { eventually, ROOT } from '../helpers';
import { testStack } from '../setup/stack-info';

const stack = testStack();
const cluster = KubeCluster.forKubeconfig(stack.kubeconfig);
const credentials = new EnvCredentialStore({ SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username, SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password }, '/nonexistent');
const namespace = uniqueNamespace('stack-prom');
const HOST = `${namespace}.prometheus.test`;
const core = () => cluster.api(stack.contexts.prod, k8s.CoreV1Api);
const custom = () => cluster.api(stack.contexts.prod, k8s.CustomObjectsApi);
// What the sample chart puts on its pods (services/delivery/chart/templates/deployment.yaml).
const annotations = { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '8080', 'prometheus.io/path': '/metrics' };

let node: RealNodeEndpoint;
let router: RouterEndpoint;
let podIp: string;

interface Target {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: string;
}

async function api<T>(path: string): Promise<T> {
  const res = await fetch(`${stack.prometheus.url}${path}`, { signal: AbortSignal.timeout(5_000) });
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`Prometheus ${path}: ${body.error}`);
  return body.data;
}
const activeTargets = async (): Promise<Target[]> => (await api<{ activeTargets: Target[] }>('/api/v1/targets?state=active')).activeTargets;
const query = async (promql: string) => api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(promql)}`);

/** One GET through prod's Traefik with the route's Host (fetch cannot set Host); resolves to the status, 0 on error. */
function viaGateway(): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: router.ports.web, path: '/api/deliveries', headers: { host: HOST }, agent: false, timeout: 3_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** The sample image, built from its Dockerfile and pushed; returns `registry/repo@digest`. */
async function pushSampleImage(): Promise<string> {
  const docker = new Docker({ socketPath: stack.docker.replace(/^unix:\/\//, '') });
  const builder = new DockerImageBuilder(docker, credentials);
  const tag = `${stack.registry.url}/stack-prometheus/delivery:test`;
  await builder.build({ contextDir: join(ROOT, 'services', 'delivery'), dockerfile: 'Dockerfile', tag, args: { VERSION: 'stack-prometheus' }, labels: {} }, () => undefined);
  const { digest } = await builder.push(tag, { host: stack.registry.url, name: 'dev', type: 'oci', insecure: true }, () => undefined);
  return `${stack.registry.url}/stack-prometheus/delivery@${digest}`;
}

const pod = (name: string, image: string, track: string, placement: object) => ({
  metadata: { name, labels: { app: 'delivery', track }, annotations },
  spec: {
    ...placement,
    containers: [{ name: 'delivery', image, ports: [{ containerPort: 8080 }], readinessProbe: { httpGet: { path: '/healthz', port: 8080 as never }, periodSeconds: 1 } }],
  },
});

beforeAll(async () => {
  node = await ensureRealNode('prod', stack.registry);
  router = await ensureRouter('prod', { kubeconfig: stack.kubeconfig, context: stack.contexts.prod });
  const image = await pushSampleImage();
  await core().createNamespace({ body: { metadata: { name: namespace } } });
  await core().createNamespacedPod({ namespace, body: pod('delivery', image, 'stable', REAL_NODE_PLACEMENT) });
  // The same pod, annotated the same, but left to the scheduler: it lands on a kwok node, which fakes Running and an IP.
  await core().createNamespacedPod({ namespace, body: pod('delivery-kwok', image, 'canary', {}) });
  await core().createNamespacedService({ namespace, body: { metadata: { name: 'delivery' }, spec: { selector: { app: 'delivery', track: 'stable' }, ports: [{ port: 80, targetPort: 8080 as never }] } } });
  await custom().createNamespacedCustomObject({
    group: 'gateway.networking.k8s.io',
    version: 'v1',
    plural: 'httproutes',
    namespace,
    body: {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'delivery' },
      spec: { parentRefs: [{ name: GATEWAY.name, namespace: GATEWAY.namespace, sectionName: GATEWAY.listener }], hostnames: [HOST], rules: [{ backendRefs: [{ name: 'delivery', port: 80 }] }] },
    },
  });
  const ready = await eventually(async () => {
    const p = await core().readNamespacedPod({ name: 'delivery', namespace });
    return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? p : undefined;
  }, 120_000, 500);
  podIp = ready.status!.podIP!;
}, 300_000);

afterAll(async () => {
  await core().deleteNamespace({ name: namespace }).catch(() => undefined);
});

test('is the stack\'s own 3.16 build, reused by a second ensurePrometheus', async () => {
  const info = await api<{ version: string }>('/api/v1/status/buildinfo');
  expect(info.version).toBe(PROMETHEUS_VERSION);
  const again = await ensurePrometheus({ kubeconfig: stack.kubeconfig, contexts: stack.contexts });
  expect(again).toMatchObject({ started: false, url: stack.prometheus.url });
});

test('discovers the real node\'s annotated pod through kubernetes_sd and scrapes it by pod IP, labelled', async () => {
  const target = await eventually(async () => {
    const t = (await activeTargets()).find((x) => x.labels.job === 'pods' && x.labels.namespace === namespace && x.labels.pod === 'delivery');
    return t?.health === 'up' ? t : undefined;
  }, 60_000, 1_000);
  expect(target.labels).toMatchObject({ job: 'pods', cluster: 'prod', namespace, pod: 'delivery', track: 'baseline' });
  expect(target.scrapeUrl).toBe(`http://${podIp}:8080/metrics`);
  expect(podIp.startsWith(node.podCidr.replace(/\.0\/24$/, '.'))).toBe(true);
  const up = await eventually(async () => {
    const r = await query(`up{job="pods",cluster="prod",namespace="${namespace}"}`);
    return r.result.length ? r.result : undefined;
  }, 30_000, 1_000);
  expect(up.map((s) => [s.metric.pod, s.value[1]])).toEqual([['delivery', '1']]);
}, 120_000);

test('a kwok pod annotated the same is not a target', async () => {
  const kwok = await eventually(async () => {
    const p = await core().readNamespacedPod({ name: 'delivery-kwok', namespace });
    return p.status?.phase === 'Running' && p.status.podIP ? p : undefined;
  }, 60_000, 500);
  expect(kwok.spec?.nodeName).not.toBe(node.nodeName);
  // Discovery has caught up with this namespace (its real pod is a target) and still leaves the kwok pod out.
  const targets = await eventually(async () => {
    const all = await activeTargets();
    return all.some((x) => x.labels.namespace === namespace && x.labels.pod === 'delivery') ? all : undefined;
  }, 60_000, 1_000);
  expect(targets.filter((x) => x.labels.namespace === namespace).map((x) => x.labels.pod)).toEqual(['delivery']);
  expect(targets.filter((x) => x.scrapeUrl.includes(kwok.status!.podIP!))).toEqual([]);
}, 120_000);

test('scrapes prod\'s Traefik: its per-service request counter for the routed Service, labelled cluster', async () => {
  const routerTarget = (await activeTargets()).find((x) => x.labels.job === 'router' && x.labels.cluster === 'prod');
  expect(routerTarget?.scrapeUrl).toBe(`http://127.0.0.1:${routerPorts('prod').metrics}/metrics`);
  // Requests through the Gateway until the route is served (Traefik picks the HTTPRoute up within moments).
  await eventually(async () => (await viaGateway()) === 200, 60_000, 500);
  for (let i = 0; i < 10; i++) expect(await viaGateway()).toBe(200);
  const series = await eventually(async () => {
    const r = await query(`sum by (cluster, service) (traefik_service_requests_total{job="router",cluster="prod",service=~".*${namespace}.*"})`);
    return r.result.length && Number(r.result[0].value[1]) >= 10 ? r.result : undefined;
  }, 30_000, 1_000);
  console.log(`traefik service label for ${namespace}/delivery: ${series.map((s) => s.metric.service).join(', ')}`);
  // Traefik's name for a Gateway API backendRef: `<namespace>-<Service>-http-<port>@kubernetesgateway` (docs/router.md).
  expect(series.map((s) => s.metric)).toEqual([{ cluster: 'prod', service: `${namespace}-delivery-http-80@kubernetesgateway` }]);
  // Traefik's own series are there too, from both clusters' routers when both run; prod's at least.
  const own = await query('count by (cluster) ({job="router",__name__=~"traefik_.+"})');
  expect(own.result.map((s) => s.metric.cluster)).toContain('prod');
}, 120_000);
