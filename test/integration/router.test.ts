/**
 * The real router on a local cluster: Traefik (client/stack/router.ts) serving the Gateway API on the local QA
 * cluster routes by an HTTPRoute's weights and header matches, and obeys a weight change within the switch budget.
 * kwok pods cannot serve, so the backends are two HTTP servers on 127.0.0.1 behind selector-less Services with
 * hand-written EndpointSlices. The API server refuses loopback IPs in an IPv4 EndpointSlice, so the slices use the
 * (deprecated) FQDN address type with the address "127.0.0.1", which Traefik dials as it is. Loopback only; every
 * loop is bounded in count and time.
 */
import { createServer, request, Agent, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { k8s } from '../../activities/kubernetes/client';
import { KubeCluster } from '../../activities/kubernetes/cluster';
import { gatewayApiRouter } from '../../activities/traffic/gateway-api';
import { ensureRouter, GATEWAY, type RouterEndpoint } from '../../client/stack/router';
import { uniqueNamespace } from '../deploy-helpers';
import { testStack } from '../setup/stack-info';

const stack = testStack();
const cluster = KubeCluster.forKubeconfig(stack.kubeconfig);
const target = { context: stack.contexts.qa, namespace: uniqueNamespace('router') };
const core = () => cluster.api(target.context, k8s.CoreV1Api);
const discovery = () => cluster.api(target.context, k8s.DiscoveryV1Api);
const custom = () => cluster.api(target.context, k8s.CustomObjectsApi);
const HOST = `${target.namespace}.router.test`; // this test's routes only, whatever else the Gateway carries
const ROUTE = { group: 'gateway.networking.k8s.io', version: 'v1', plural: 'httproutes', namespace: target.namespace, name: 'web' };
const SWITCH_BUDGET_MS = 2_000;

const agent = new Agent({ keepAlive: true, maxSockets: 16 });
const servers: Server[] = [];
let router: RouterEndpoint;

/** A backend that answers with its track's name. */
async function backend(track: string): Promise<number> {
  const server = createServer((_req, res) => res.end(track));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** A Service without selector and its EndpointSlice pointing at a loopback backend. */
async function service(name: string, port: number): Promise<void> {
  const namespace = target.namespace;
  await core().createNamespacedService({ namespace, body: { metadata: { name }, spec: { ports: [{ name: 'http', port: 80, targetPort: port as never, protocol: 'TCP' }] } } });
  await discovery().createNamespacedEndpointSlice({
    namespace,
    body: {
      metadata: { name: `${name}-loopback`, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'FQDN',
      ports: [{ name: 'http', port, protocol: 'TCP' }],
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    },
  });
}

/** One request through Traefik's web entrypoint; the body names the backend that served it. */
function get(headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${router.url}/`, { agent, headers: { host: HOST, ...headers }, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** `n` requests, `parallel` at a time; counts the answers by body (non-200s count as `status <code>`). */
async function send(n: number, headers: Record<string, string> = {}, parallel = 16): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < n) {
        next++;
        const r = await get(headers);
        const key = r.status === 200 ? r.body : `status ${r.status}`;
        counts[key] = (counts[key] ?? 0) + 1;
      }
    }),
  );
  return counts;
}

/** Sends requests one at a time until `run` answers in a row come from `track`; returns when that run began (ms since epoch). */
async function untilSteady(track: string, run: number, timeoutMs: number, headers: Record<string, string> = {}): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let streak = 0;
  let streakStart = 0;
  for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
    const sentAt = Date.now();
    const r = await get(headers).catch(() => ({ status: 0, body: '' }));
    if (r.status === 200 && r.body === track) {
      if (streak++ === 0) streakStart = sentAt;
      if (streak >= run) return streakStart;
    } else {
      streak = 0;
    }
  }
  throw new Error(`${run} answers in a row from ${track} did not come within ${timeoutMs} ms`);
}

async function replaceRoute(spec: unknown): Promise<void> {
  const current = (await custom().getNamespacedCustomObject(ROUTE)) as { metadata: Record<string, unknown> };
  await custom().replaceNamespacedCustomObject({ ...ROUTE, body: { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: current.metadata, spec } });
}

const parentRefs = [{ name: GATEWAY.name, namespace: GATEWAY.namespace, sectionName: GATEWAY.listener }];
const weighted = (stable: number, canary: number) => ({ backendRefs: [{ name: 'web-stable', port: 80, weight: stable }, { name: 'web-canary', port: 80, weight: canary }] });

// The canary adapter as the canary activities build it; the canary here is a Service, not a Deployment, so nothing scales.
const traffic = gatewayApiRouter({ route: 'web' }, { canary: 'web-canary', scale: async () => undefined, customObjects: (context) => cluster.api(context, k8s.CustomObjectsApi) });

beforeAll(async () => {
  router = await ensureRouter('qa', { kubeconfig: stack.kubeconfig, context: target.context });
  await core().createNamespace({ body: { metadata: { name: target.namespace } } });
  await service('web-stable', await backend('stable'));
  await service('web-canary', await backend('canary'));
  await custom().createNamespacedCustomObject({
    ...ROUTE,
    body: { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: ROUTE.name }, spec: { parentRefs, hostnames: [HOST], rules: [weighted(100, 0)] } },
  });
  await untilSteady('stable', 5, 30_000);
}, 180_000);

afterAll(async () => {
  await core().deleteNamespace({ name: target.namespace }).catch(() => undefined);
  agent.destroy();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

test('the router is reused: a second ensureRouter finds the same Traefik, with the Gateway programmed', async () => {
  const again = await ensureRouter('qa', { kubeconfig: stack.kubeconfig, context: target.context });
  expect(again).toMatchObject({ started: false, pid: router.pid, url: router.url });
  const gw = (await custom().getNamespacedCustomObject({ group: 'gateway.networking.k8s.io', version: 'v1', plural: 'gateways', namespace: GATEWAY.namespace, name: GATEWAY.name })) as any;
  expect(gw.status.conditions.find((c: any) => c.type === 'Programmed')).toMatchObject({ status: 'True' });
  const route = (await custom().getNamespacedCustomObject(ROUTE)) as any;
  expect(route.status.parents[0].conditions.find((c: any) => c.type === 'Accepted')).toMatchObject({ status: 'True' });
}, 60_000);

test('weights: at 90/10 (set by the Gateway API adapter) the canary receives 10 % ± 3 pp of 2,000 requests', async () => {
  await traffic.setWeight(target, 10, 1);
  const route = (await custom().getNamespacedCustomObject(ROUTE)) as any;
  expect(route.spec.rules[0].backendRefs.map((b: any) => [b.name, b.weight])).toEqual([['web-stable', 90], ['web-canary', 10]]);
  // The new weights are live once the canary answers at all (Traefik swaps its whole configuration at once).
  await untilSteady('canary', 1, 10_000);
  const counts = await send(2_000);
  const share = (counts.canary ?? 0) / 2_000;
  console.log(`router weights 90/10: ${JSON.stringify(counts)} → canary ${(share * 100).toFixed(1)} %`);
  expect((counts.stable ?? 0) + (counts.canary ?? 0)).toBe(2_000);
  expect(Math.abs(share - 0.1)).toBeLessThanOrEqual(0.03);
  // The router's Prometheus metrics count the canary service's requests.
  const metrics = await (await fetch(router.metricsUrl)).text();
  expect(metrics).toMatch(new RegExp(`traefik_service_requests_total\\{[^}]*service="${target.namespace}-web-canary-http-80`));
}, 120_000);

test('a weight change is obeyed within 2 s (10 % → 100 % → 0 % canary)', async () => {
  await traffic.setWeight(target, 10, 1);
  await untilSteady('canary', 1, 10_000);
  // Timed from the patch's acknowledgement by the API server to the first of 30 answers in a row from the new side.
  await traffic.setWeight(target, 100, 1);
  const toCanary = Date.now();
  const canaryAt = await untilSteady('canary', 30, 10_000);
  await traffic.reset(target);
  const toStable = Date.now();
  const stableAt = await untilSteady('stable', 30, 10_000);
  const up = canaryAt - toCanary;
  const down = stableAt - toStable;
  console.log(`router switch latency (patch → router obeys): to 100 % canary ${up} ms, back to stable ${down} ms`);
  expect(up).toBeLessThanOrEqual(SWITCH_BUDGET_MS);
  expect(down).toBeLessThanOrEqual(SWITCH_BUDGET_MS);
}, 60_000);

test('a header match sends only matching requests to the canary', async () => {
  // The adapter cannot write matches (it weighs every rule and refuses a rule without a stable backend): the route is written here.
  await replaceRoute({
    parentRefs,
    hostnames: [HOST],
    rules: [{ matches: [{ headers: [{ name: 'x-canary', value: 'always' }] }], backendRefs: [{ name: 'web-canary', port: 80 }] }, weighted(100, 0)],
  });
  await untilSteady('canary', 5, 10_000, { 'x-canary': 'always' });
  expect(await send(200, { 'x-canary': 'always' })).toEqual({ canary: 200 });
  expect(await send(200)).toEqual({ stable: 200 });
  expect(await send(200, { 'x-canary': 'never' })).toEqual({ stable: 200 });
}, 60_000);
