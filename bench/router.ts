/**
 * The canary's moving parts against its analysis interval (`npm run bench -- router [n]`), goals from issue #12:
 *  - switch:   Traefik on the local QA cluster obeys an HTTPRoute weight change (patched by the Gateway API adapter,
 *              as the canary activities do): from the patch to the first of K answers in a row from the new side,
 *              n switches each way. Goal ≤ 2 s, printed as a share of a 60 s interval.
 *  - overhead: a canary step's orchestration (setCanaryWeight + one measureCanary round trip + judge + the interval's
 *              timer) through the release workflow with mocked activities, on the time-skipping test server (timers
 *              pass at once, so the wall time is all orchestration): releases of 1 and of 41 steps, the difference per
 *              step. Goal ≤ 1 % of the interval.
 * The switch's backends are two HTTP servers on 127.0.0.1 behind selector-less Services with FQDN EndpointSlices
 * (as test/integration/router.test.ts: kwok pods cannot serve). Loopback only; every loop bounded in count and time.
 */
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { k8s } from '../activities/kubernetes/client';
import { KubeCluster } from '../activities/kubernetes/cluster';
import { gatewayApiRouter } from '../activities/traffic/gateway-api';
import { ensureClusters } from '../client/stack/kubernetes';
import { ensureRouter, GATEWAY } from '../client/stack/router';
import { show, stats } from './realnode';

const print = (line: string) => process.stdout.write(`${line}\n`);
const INTERVAL_MS = 60_000;
/** Answers in a row from the new side that count as "the router obeys". */
const STREAK = 30;

export async function routerBench(n: number): Promise<void> {
  await switchBench(n);
  await canaryStepBench(n);
}

async function switchBench(n: number): Promise<void> {
  const clusters = await ensureClusters(['qa']);
  const cluster = KubeCluster.forKubeconfig(clusters.kubeconfig);
  const target = { context: clusters.contexts.qa, namespace: `bench-router-${Date.now().toString(36)}` };
  const router = await ensureRouter('qa', { kubeconfig: clusters.kubeconfig, context: target.context });
  const core = cluster.api(target.context, k8s.CoreV1Api);
  const discovery = cluster.api(target.context, k8s.DiscoveryV1Api);
  const custom = cluster.api(target.context, k8s.CustomObjectsApi);
  const host = `${target.namespace}.router.bench`;
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const servers: Server[] = [];

  const backend = async (track: string) => {
    const server = createServer((_req, res) => res.end(track));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };
  const service = async (name: string, port: number) => {
    const namespace = target.namespace;
    await core.createNamespacedService({ namespace, body: { metadata: { name }, spec: { ports: [{ name: 'http', port: 80, targetPort: port as never, protocol: 'TCP' }] } } });
    await discovery.createNamespacedEndpointSlice({
      namespace,
      body: {
        metadata: { name: `${name}-loopback`, labels: { 'kubernetes.io/service-name': name } },
        addressType: 'FQDN',
        ports: [{ name: 'http', port, protocol: 'TCP' }],
        endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
      },
    });
  };
  const get = () =>
    new Promise<string>((resolve) => {
      const req = request(`${router.url}/`, { agent, headers: { host }, timeout: 2_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(res.statusCode === 200 ? body : `status ${res.statusCode}`));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => resolve('error'));
      req.end();
    });
  /** Requests one at a time until STREAK answers in a row come from `track`; returns when that streak began. */
  const obeyed = async (track: string, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    let streak = 0;
    let start = 0;
    for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
      const sentAt = performance.now();
      if ((await get()) === track) {
        if (streak++ === 0) start = sentAt;
        if (streak >= STREAK) return start;
      } else streak = 0;
    }
    throw new Error(`${STREAK} answers in a row from ${track} did not come within ${timeoutMs} ms`);
  };

  const traffic = gatewayApiRouter({ route: 'web' }, { canary: 'web-canary', scale: async () => undefined, customObjects: (context) => cluster.api(context, k8s.CustomObjectsApi) });
  try {
    await core.createNamespace({ body: { metadata: { name: target.namespace } } });
    await service('web-stable', await backend('stable'));
    await service('web-canary', await backend('canary'));
    await custom.createNamespacedCustomObject({
      group: 'gateway.networking.k8s.io',
      version: 'v1',
      plural: 'httproutes',
      namespace: target.namespace,
      body: {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: { name: 'web' },
        spec: {
          parentRefs: [{ name: GATEWAY.name, namespace: GATEWAY.namespace, sectionName: GATEWAY.listener }],
          hostnames: [host],
          rules: [{ backendRefs: [{ name: 'web-stable', port: 80, weight: 100 }, { name: 'web-canary', port: 80, weight: 0 }] }],
        },
      },
    });
    await obeyed('stable', 30_000);
    const patch = { up: [] as number[], down: [] as number[] };
    const total = { up: [] as number[], down: [] as number[] };
    for (let i = 0; i < n; i++) {
      for (const [dir, track, set] of [
        ['up', 'canary', () => traffic.setWeight(target, 100, 1)],
        ['down', 'stable', () => traffic.reset(target)],
      ] as const) {
        const t0 = performance.now();
        await set();
        const acked = performance.now();
        const at = await obeyed(track);
        patch[dir].push(acked - t0);
        total[dir].push(at - t0);
      }
    }
    print(`router: Traefik ${router.url} (cluster qa), weight patched by the Gateway API adapter → first of ${STREAK} answers in a row from the new side; ${n} switches each way`);
    print(`  patch call (read + replace HTTPRoute)   ${show([...patch.up, ...patch.down])}`);
    print(`  stable → 100 % canary, patch → obeyed   ${show(total.up)}`);
    print(`  canary → stable (reset), patch → obeyed ${show(total.down)}`);
    const worst = Math.max(...total.up, ...total.down);
    print(`  vs a ${INTERVAL_MS / 1000} s analysis interval: median ${((stats([...total.up, ...total.down]).median / INTERVAL_MS) * 100).toFixed(2)} %, worst ${((worst / INTERVAL_MS) * 100).toFixed(2)} % (goal ≤ 2 s: ${worst <= 2_000 ? 'met' : 'NOT met'})`);
  } finally {
    await core.deleteNamespace({ name: target.namespace }).catch(() => undefined);
    agent.destroy();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** Canary steps: `count` pairs of a weight step and one analysis interval (weights rising, all below 100). */
const stepPairs = (count: number) =>
  `[ ${Array.from({ length: count }, (_, i) => `{ setWeight: ${5 + Math.floor((i * 90) / count)} }, { analysis: { duration: ${INTERVAL_MS / 1000}s, interval: ${INTERVAL_MS / 1000}s } }`).join(', ')} ]`;

/**
 * Wall time of a whole release (QA, then production's canary) with 1 step and with 1 + EXTRA_STEPS steps,
 * alternating, `rounds` times each; the difference of the medians over the extra steps is one step's orchestration
 * (each run also starts a test server and workers, ~4 s that varies by a few hundred ms: hence many extra steps).
 * The time-skipping server's own timer jumps are in it, so this is an upper bound.
 */
const EXTRA_STEPS = 40;
async function canaryStepBench(rounds: number): Promise<void> {
  const { canaryBundle, runCanaryState } = await import('./canary-state');
  const code = await canaryBundle('incremental');
  const extra = EXTRA_STEPS;
  const times: Record<'small' | 'big', number[]> = { small: [], big: [] };
  for (let r = 0; r < Math.min(rounds, 5); r++) {
    for (const [size, count] of [['small', 1], ['big', 1 + extra]] as const) {
      const t0 = performance.now();
      const [runResult] = await runCanaryState({ counts: [count], modes: ['incremental'], intervalSeconds: INTERVAL_MS / 1000, steps: stepPairs(count), bundles: { incremental: code } });
      times[size].push(performance.now() - t0);
      if (runResult.phase !== 'succeeded' || runResult.scores.length !== count) throw new Error(`canary of ${count} steps ended ${runResult.phase} after ${runResult.scores.length} intervals`);
    }
  }
  const perStep = (stats(times.big).median - stats(times.small).median) / extra;
  print(`canary step: setCanaryWeight + one measureCanary round trip + judge + the interval's timer, release workflow, mocked activities, time-skipping server`);
  print(`  release with 1 step                   ${show(times.small)}  (${times.small.length} runs each, alternating; each starts a test server and workers)`);
  print(`  release with ${String(1 + extra).padEnd(2)} steps                 ${show(times.big)}`);
  print(`  one step's orchestration (difference of medians / ${extra}): ${perStep.toFixed(0)} ms = ${((perStep / INTERVAL_MS) * 100).toFixed(2)} % of a ${INTERVAL_MS / 1000} s interval (goal ≤ 1 %: ${perStep <= INTERVAL_MS / 100 ? 'met' : 'NOT met'})`);
}
