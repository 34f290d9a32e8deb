/**
 * A canary judged on real traffic (issue #12): the releases' pods run on the production cluster's real node, Traefik
 * routes the sample chart's HTTPRoute by the weights slipway's Gateway API adapter sets, and the canaries are judged
 * on the DEFAULT metrics — the router's per-service error ratio and p99 latency (model/canary-presets.ts), which the
 * stack's Prometheus (client/stack/prometheus.ts) scrapes from prod's Traefik. That Prometheus also discovers the
 * pods through kubernetes_sd_configs and scrapes their own /metrics by pod IP, labelled track=baseline|canary from
 * the pods' `track` label. Load is a bounded loop through
 * Traefik's web entrypoint on 127.0.0.1 (issue #12's network rule: loopback and the stack's own pod addresses only).
 */
import { request } from 'node:http';
import type { SlipwayClient } from '../../client/client';
import { parseConfig, planRelease } from '../../model/plan';
import { k8s } from '../../activities/kubernetes/client';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { ensureRealNode, REAL_NODE_PLACEMENT } from '../../client/stack/node';
import { ensureRouter, routerPorts } from '../../client/stack/router';
import type { ReleaseStatus } from '../../model/types';
import { deployConfigText, helmHistory, kube, uniqueNamespace } from '../deploy-helpers';
import { ensureTestNamespace, eventually, outcomeOf, startHarness, terminateRunning, uniqueVersion, type Harness } from '../helpers';
import { realActivities } from '../real-activities';
import { queryScope } from '../../activities/canary';
import { trackQuery } from '../../activities/metrics/promql';
import { ROUTER_METRICS, routerQueries } from '../../model/canary-presets';
import { releaseIsRunning } from '../../activities';
import { testStack } from '../setup/stack-info';

/**
 * A Temporal namespace of this file's own: the other integration files share `slipway-it`, and their
 * terminateRunning (in beforeAll) terminated this file's releases mid-canary when they ran at the same time.
 */
const NS = 'slipway-canary-real';
const stack = testStack();
const WEB = routerPorts('prod').web;
const credentials = new EnvCredentialStore({ SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username, SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password }, '/nonexistent');
const ns = uniqueNamespace('canary-real');
const HOST = `${ns}.slipway.test`;
// The pause lets the canary's pods start on the real node and be scraped before the first interval is measured.
// Three 4 s intervals on 1 s points: a fault must be caught by the third (issue #12). At 50 % of the load below the
// canary serves ~30 requests/s, so a 5 s rate window of a 5 % error canary holds ~7 errors (a window without any is
// rare): with ~15 requests/s it held 1–2 and the judge could not tell 0–3 % from the baseline's 0 (seen: promoted).
const STEPS = '[ { setWeight: 50 }, { pause: { duration: 8s } }, { analysis: { duration: 12s, interval: 4s } } ]';
/** Hard cap of the load loop, whatever happens to the test. */
const LOAD_CAP_MS = 480_000;

let slipway: SlipwayClient;
let harness: Harness;

interface Answer {
  at: number;
  status: number | 'error';
  version: string;
}
const answers: Answer[] = [];
let loading = true;
let load: Promise<void> = Promise.resolve();

/** One GET through Traefik's web entrypoint with the route's Host; no keep-alive, so each request is routed anew. */
function get(headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: WEB, path: '/api/deliveries', headers: { host: HOST, ...headers }, agent: false, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ at: Date.now(), status: res.statusCode ?? 0, version: String(res.headers['x-delivery-version'] ?? 'unknown') }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ at: Date.now(), status: 'error', version: 'none' }));
    req.end();
  });
}

const prodValues = JSON.stringify({
  ...REAL_NODE_PLACEMENT,
  metrics: { scrape: true },
  preStopSleepSeconds: 3, // terminating pods answer until Traefik has dropped them (rollouts, canary removal)
  versionFromImage: true, // the build arg VERSION (the release's version) answers, also from the canary copy
  route: { enabled: true, hostnames: [HOST], canaryHeader: true },
});

// No queries, no judge: the default (router) metrics.
const CANARY = `{ traffic: { type: gateway-api, route: delivery }, prometheus: { url: "${stack.prometheus.url}", stepSeconds: 1 }, steps: ${STEPS}, decisionTimeout: 20s }`;

/**
 * The release's build args: a 5 ms handler (the sample's own work takes microseconds, which scheduler noise on 2
 * cores would dominate) unless a fault is planted. A build arg, not chart env: the canary copies the stable pods' env,
 * which would override the canary image's own LATENCY_MS.
 */
const config = (version: string, buildArgs: Record<string, string> = {}) =>
  deployConfigText({
    ns,
    prodValues,
    prodCanary: CANARY,
    qaDeploy: '{ timeout: 60s, smoke: [ { type: rollout } ] }',
    prodDeploy: '{ timeout: 90s, smoke: [ { type: rollout } ] }',
  }).replace('args: { VERSION: test }', `args: ${JSON.stringify({ VERSION: version, LATENCY_MS: '5', ...buildArgs })}`);
function start(buildArgs?: Record<string, string>) {
  const version = uniqueVersion();
  return slipway.start(planRelease(parseConfig(config(version, buildArgs)), { service: 'delivery', version, requester: 'ci-bot' }));
}

async function approve(id: string): Promise<void> {
  const { status, reached } = await slipway.waitFor(id, 'approval', { timeoutMs: 180_000 });
  expect(status.error).toBeUndefined();
  expect(reached).toBe(true);
  await slipway.decide(id, 'approve', { approver: 'alice' });
}

/** Answers in [from, to), counted by version and status. */
function tally(from: number, to = Infinity) {
  const inRange = answers.filter((a) => a.at >= from && a.at < to);
  const by = (f: (a: Answer) => string) => inRange.reduce<Record<string, number>>((m, a) => ({ ...m, [f(a)]: (m[f(a)] ?? 0) + 1 }), {});
  return { total: inRange.length, byVersion: by((a) => a.version), byStatus: by((a) => String(a.status)), failed: (v: string) => inRange.filter((a) => a.version === v && a.status !== 200).length, list: inRange };
}

beforeAll(async () => {
  await ensureTestNamespace(NS);
  harness = await startHarness(NS, realActivities(credentials, 'canary-real-host', {}, { holderActive: releaseIsRunning }), 'canary-real-host');
  slipway = harness.slipway;
  await terminateRunning(slipway, 'leftover from an earlier run');
  await ensureRealNode('prod', stack.registry);
  // The prod cluster's Traefik, as `stack up` starts it (reused when already running).
  await ensureRouter('prod', { kubeconfig: stack.kubeconfig, context: stack.contexts.prod });

  // ~60-80 requests/s through Traefik (16 every 200 ms plus their answers) until the tests end or the cap, whichever is first.
  const until = Date.now() + LOAD_CAP_MS;
  load = (async () => {
    while (loading && Date.now() < until) {
      answers.push(...(await Promise.all(Array.from({ length: 16 }, () => get()))));
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
}, 300_000);

afterAll(async () => {
  loading = false;
  await load;
  await kube().cluster.api(stack.contexts.prod, k8s.CoreV1Api).deleteNamespace({ name: ns }).catch(() => undefined);
  await harness?.stop();
});

let stable: ReleaseStatus;

/** Prometheus's instant answer to a PromQL query. */
async function promQuery(query: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const r = (await fetch(`${stack.prometheus.url}/api/v1/query?query=${encodeURIComponent(query)}`).then((x) => x.json())) as any;
  return r.data?.result ?? [];
}

/** Each interval as [weight, score, result, {metric: classification}], for the log. */
const intervalsOf = (s: ReleaseStatus) => JSON.stringify(s.canary?.intervals.map((i) => [i.weight, Number(i.score.toFixed(1)), i.result, Object.fromEntries(i.metrics.map((m) => [m.name, m.classification]))]));

test('release 1 runs on the real node and answers through the Gateway; Traefik\'s metrics for its backend reach Prometheus', async () => {
  const { workflowId } = await start();
  await approve(workflowId);
  const { type, status } = await outcomeOf(slipway, workflowId);
  expect([type, status.error]).toEqual([undefined, undefined]);
  stable = status;
  const pods = await eventually(async () => {
    const r = await promQuery(`up{job="pods",cluster="prod",namespace="${ns}"}`);
    return r.length === 2 && r.every((s) => s.value[1] === '1' && s.metric.track === 'baseline') ? r : undefined;
  }, 60_000, 1000);
  expect(pods).toHaveLength(2);
  const since = Date.now();
  await eventually(async () => tally(since).byVersion[status.version] >= 20, 30_000, 500);
  expect(tally(since).byStatus).toEqual({ 200: expect.any(Number) });
  // The default queries' selector finds the stable backend's series (the label format is Traefik's, not ours).
  const scope = queryScope(ns, 'delivery');
  const requests = await eventually(async () => {
    const r = await promQuery(`sum by (service) (traefik_service_requests_total{${/service=~"[^"]+"/.exec(trackQuery(routerQueries(1)[ROUTER_METRICS.errors], 'baseline', scope))![0]}})`);
    return r.length ? r : undefined;
  }, 30_000, 1000);
  console.log(`Traefik's stable backend in Prometheus: ${JSON.stringify(requests.map((r) => [r.metric.service, r.value[1]]))}`);
  expect(requests.map((r) => r.metric.service)).toEqual([`${ns}-delivery-stable-http-80@kubernetesgateway`]);
  const errorRatio = await eventually(async () => {
    const r = await promQuery(trackQuery(routerQueries(1)[ROUTER_METRICS.errors], 'baseline', scope));
    return r.length ? r : undefined;
  }, 30_000, 1000);
  expect(Number(errorRatio[0].value[1])).toBe(0);
}, 300_000);

test('a healthy canary gets half the traffic through Traefik, every interval passes on the router\'s metrics, and it is promoted', async () => {
  expect(stable?.phase).toBe('succeeded');
  const { workflowId } = await start();
  await approve(workflowId);
  const approved = Date.now();
  // While it is analysed: the header rule sends only to the canary, the weighted rule splits about evenly.
  const during = await eventually(async () => {
    const s = await slipway.status(workflowId);
    return (s.canary?.intervals.length ?? 0) > 0 ? s : undefined;
  }, 180_000, 500);
  const header = await Promise.all(Array.from({ length: 10 }, () => get({ 'x-canary': 'always' })));
  expect(header.map((a) => a.version)).toEqual(Array(10).fill(during.version));
  const analysisStart = Date.now() - 3_000;
  const { type, status } = await outcomeOf(slipway, workflowId);
  const window = tally(analysisStart, Date.now() - 2_000);
  const share = (window.byVersion[status.version] ?? 0) / window.total;
  console.log(`healthy canary: intervals ${intervalsOf(status)}; ${window.total} requests during analysis ${JSON.stringify(window.byVersion)} ${JSON.stringify(window.byStatus)}, canary share ${(share * 100).toFixed(1)} %`);
  expect([type, status.error]).toEqual([undefined, undefined]);
  expect(status.canary).toMatchObject({ state: 'promoted', weight: 50 });
  expect(status.canary!.intervals.map((i) => i.result)).toEqual(['Pass', 'Pass', 'Pass']);
  // Judged on the default metrics, both with data (a Nodata error ratio would have failed: mustHaveData).
  expect(status.canary!.intervals.at(-1)!.metrics.map((m) => [m.name, m.classification])).toEqual([
    [ROUTER_METRICS.errors, 'Pass'],
    [ROUTER_METRICS.latency, 'Pass'],
  ]);
  expect(share).toBeGreaterThan(0.35);
  expect(share).toBeLessThan(0.65);
  expect(window.byStatus).toEqual({ 200: expect.any(Number) });
  expect((await helmHistory('prod', ns)).at(-1)).toMatchObject({ status: 'deployed', appVersion: status.version });
  // After promotion, everything is answered by the new release.
  const after = Date.now();
  await eventually(async () => {
    const t = tally(after);
    return t.total >= 40 && t.list.slice(-40).every((a) => a.version === status.version && a.status === 200);
  }, 60_000, 500);
  // No request failed from approval on: canary start, weight switch, promotion (Helm rollout) and canary removal.
  const whole = tally(approved);
  console.log(`healthy canary: ${whole.total} requests from approval to promoted ${JSON.stringify(whole.byStatus)}`);
  expect(whole.byStatus).toEqual({ 200: whole.total });
  stable = status;
}, 300_000);

/**
 * A planted fault: the canary is rolled back on the named metric within the analysis' three intervals, Helm's history
 * is untouched, and afterwards only the stable release answers, all 200. Returns the requests from approval to 3 s
 * after the rollback, for the caller's accounting of failures.
 */
async function faultyCanary(what: string, buildArgs: Record<string, string>, failing: string) {
  expect(stable?.phase).toBe('succeeded');
  const before = await helmHistory('prod', ns);
  const { workflowId } = await start(buildArgs);
  await approve(workflowId);
  const began = Date.now();
  const { type, status } = await outcomeOf(slipway, workflowId);
  const ended = Date.now();
  console.log(`${what}: intervals ${intervalsOf(status)}; error ${status.error}`);
  expect(type).toBe('CanaryFailedError');
  expect(status.error).toMatch(new RegExp(`canary failed analysis: score .* ≤ marginal 75 \\(.*${failing} High`));
  expect(status.canary).toMatchObject({ state: 'rolled-back' });
  const last = status.canary!.intervals.at(-1)!;
  expect(last.result).toBe('Fail');
  expect(last.metrics.find((m) => m.name === failing)?.classification).toBe('High');
  expect(status.canary!.intervals.length).toBeLessThanOrEqual(3);
  expect(await helmHistory('prod', ns)).toEqual(before);

  await new Promise((r) => setTimeout(r, 3_000));
  const window = tally(began);
  console.log(`${what}: ${window.total} requests from approval to 3 s after rollback ${JSON.stringify(window.byVersion)} ${JSON.stringify(window.byStatus)}`);
  expect(window.byVersion[status.version]).toBeGreaterThan(0);
  // After the rollback only the stable release answers, all 200.
  const back = tally(ended + 1_000);
  expect(back.total).toBeGreaterThanOrEqual(40);
  expect(back.byVersion).toEqual({ [stable.version]: back.total });
  expect(back.byStatus).toEqual({ 200: back.total });
  return { status, window };
}

test('a canary answering 5 % errors fails on the error ratio within three intervals, traffic returns to stable, and the switch fails no request of its own', async () => {
  const { status, window } = await faultyCanary('5 % errors', { ERROR_RATE: '0.05' }, ROUTER_METRICS.errors);
  // Every failed request came from the canary's pods (its own 5 %): none from the stable release or the switch.
  expect(window.failed(stable.version)).toBe(0);
  expect(window.list.filter((a) => a.status !== 200 && a.version !== status.version)).toEqual([]);
  const canary = window.list.filter((a) => a.version === status.version);
  console.log(`5 % errors: the canary answered ${canary.length}, ${window.failed(status.version)} of them 500`);
  expect(window.failed(status.version)).toBeGreaterThan(0);
}, 300_000);

test('a canary 50 ms slower fails on the p99 latency, not on errors, and no request fails', async () => {
  const { window } = await faultyCanary('+50 ms', { LATENCY_MS: '55' }, ROUTER_METRICS.latency);
  expect(window.byStatus).toEqual({ 200: window.total });
  expect(window.list.filter((a) => a.status !== 200)).toEqual([]);
}, 300_000);
