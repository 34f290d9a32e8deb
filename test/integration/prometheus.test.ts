/**
 * The Prometheus MetricProvider against a real Prometheus (Debian's) scraping real processes of the sample service
 * under local load — a baseline, a healthy canary and a canary with injected errors and latency — and the canary judge
 * on what it returns. (The release workflow's canary loop on these metrics: test/integration/canary.test.ts.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { createCanaryActivities } from '../../activities/canary';
import type { KubeCanary } from '../../activities/kubernetes/canary';
import { MetricQueryError, PrometheusProvider, trackQuery } from '../../activities/metrics/prometheus';
import { findBinary, portOpen, waitFor } from '../../client/stack/process';
import { judge } from '../../workflows/canary/judge';
import { type JudgeConfig, type MetricConfig } from '../../model/canary';
import { ROOT } from '../helpers';

const PROM_PORT = 19090;
// A second Prometheus served under a path prefix (as behind a shared ingress), and a proxy in front of it that can
// answer 503 the way a load balancer does while Prometheus restarts.
const PREFIXED_PORT = 19091;
const PROXY_PORT = 19092;
let proxy: Server | undefined;
let failuresLeft = 0;
const TARGETS = [
  { port: 18081, pair: 'healthy', track: 'baseline', env: {} },
  { port: 18082, pair: 'healthy', track: 'canary', env: {} },
  { port: 18083, pair: 'faulty', track: 'baseline', env: {} },
  { port: 18084, pair: 'faulty', track: 'canary', env: { ERROR_RATE: '0.3', LATENCY_MS: '15' } },
];
const children: ChildProcess[] = [];
const prometheus = new PrometheusProvider(`http://127.0.0.1:${PROM_PORT}`);

beforeAll(async () => {
  const bin = join(ROOT, 'services', 'delivery', 'bin', 'delivery');
  for (const t of TARGETS) {
    children.push(spawn(bin, [], { env: { ...process.env, LISTEN: `127.0.0.1:${t.port}`, VERSION: t.track, ...t.env }, stdio: 'ignore' }));
  }
  const dir = mkdtempSync(join(tmpdir(), 'slipway-prom-'));
  const scrape = TARGETS.map((t) => `      - targets: ["127.0.0.1:${t.port}"]\n        labels: { pair: ${t.pair}, track: ${t.track} }`).join('\n');
  writeFileSync(join(dir, 'prometheus.yml'), `global: { scrape_interval: 1s, evaluation_interval: 1s }\nscrape_configs:\n  - job_name: delivery\n    static_configs:\n${scrape}\n`);
  const promBin = findBinary('prometheus');
  if (!promBin) throw new Error('prometheus is missing: apt-get install prometheus (scripts/install.sh does)');
  children.push(spawn(promBin, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${PROM_PORT}`], { stdio: 'ignore' }));
  writeFileSync(join(dir, 'empty.yml'), 'global: { evaluation_interval: 1s }\n');
  children.push(
    spawn(promBin, [`--config.file=${join(dir, 'empty.yml')}`, `--storage.tsdb.path=${join(dir, 'data-prefixed')}`, `--web.listen-address=127.0.0.1:${PREFIXED_PORT}`, '--web.route-prefix=/prometheus', `--web.external-url=http://127.0.0.1:${PREFIXED_PORT}/prometheus`], { stdio: 'ignore' }),
  );
  proxy = createServer((req, res) => {
    if (failuresLeft > 0 || req.url?.startsWith('/down/')) {
      failuresLeft = Math.max(0, failuresLeft - 1);
      res.writeHead(503, { 'content-type': 'text/html' }).end('<html><body>503 Service Temporarily Unavailable</body></html>');
      return;
    }
    const upstream = request({ host: '127.0.0.1', port: PREFIXED_PORT, path: req.url, method: req.method, headers: req.headers }, (u) => {
      res.writeHead(u.statusCode ?? 502, u.headers);
      u.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((ok) => proxy!.listen(PROXY_PORT, '127.0.0.1', ok));
  for (const t of TARGETS) await waitFor(`delivery on ${t.port}`, () => portOpen(t.port), 10_000);
  await waitFor('prometheus', () => portOpen(PROM_PORT), 30_000);
  await waitFor('prefixed prometheus', () => portOpen(PREFIXED_PORT), 30_000);

  // Local load, bounded in count and time: ~25 requests/s to each process for 20 s, on loopback only.
  const until = Date.now() + 20_000;
  await Promise.all(
    TARGETS.map(async (t) => {
      while (Date.now() < until) {
        await Promise.all(Array.from({ length: 5 }, () => fetch(`http://127.0.0.1:${t.port}/api/deliveries`).then((r) => r.text()).catch(() => undefined)));
        await new Promise((r) => setTimeout(r, 200));
      }
    }),
  );
}, 90_000);

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  proxy?.close();
});

const errorRate = (pair: string) =>
  `(sum(rate(http_requests_total{pair="${pair}",track="$track",code=~"5.."}[5s])) or vector(0)) / sum(rate(http_requests_total{pair="${pair}",track="$track"}[5s]))`;
const latency = (pair: string) =>
  `sum(rate(http_request_duration_seconds_sum{pair="${pair}",track="$track"}[5s])) / sum(rate(http_request_duration_seconds_count{pair="${pair}",track="$track"}[5s]))`;

const metric = (name: string, critical = false): MetricConfig => ({
  name, groups: [name], direction: 'increase', critical, mustHaveData: true, nanStrategy: 'remove',
  outliers: { strategy: 'keep', factor: 3 }, effectSize: { measure: 'meanRatio', allowedIncrease: 1, allowedDecrease: 1, criticalIncrease: 1, criticalDecrease: 1 },
});
const config: JudgeConfig = { judge: { confidenceLevel: 0.98, tolerance: 0.25 }, groupWeights: {}, thresholds: { pass: 95, marginal: 75 }, metrics: [metric('error-rate', true), metric('latency')] };

async function judgePair(pair: string) {
  const end = new Date(Date.now() - 1000);
  const start = new Date(end.getTime() - 14_000);
  const data = [];
  for (const [name, template] of [['error-rate', errorRate(pair)], ['latency', latency(pair)]] as const) {
    const [baseline, canary] = await Promise.all(['baseline', 'canary'].map((track) => prometheus.queryRange({ query: trackQuery(template, track as 'baseline' | 'canary'), start, end, stepSeconds: 1 })));
    data.push({ name, baseline, canary });
  }
  return { data, verdict: judge(config, data) };
}

test('a healthy canary passes against its baseline, on metrics Prometheus scraped from real processes', async () => {
  const { data, verdict } = await judgePair('healthy');
  expect(data[1].baseline.length).toBeGreaterThanOrEqual(10);
  expect(verdict.result).toBe('Pass');
}, 30_000);

test('a canary with injected errors and latency fails; the error rate is a critical High', async () => {
  const { data, verdict } = await judgePair('faulty');
  const canaryErrors = data[0].canary.reduce((a, b) => a + b, 0) / data[0].canary.length;
  expect(canaryErrors).toBeGreaterThan(0.15);
  expect(verdict).toMatchObject({ result: 'Fail', score: 0, reason: 'a critical metric failed' });
  expect(verdict.metrics.map((m) => [m.name, m.classification, m.critical])).toEqual([
    ['error-rate', 'High', true],
    ['latency', 'High', false],
  ]);
}, 30_000);

test('a failing query is an error, and a metric with no data is Nodata — never a silent pass', async () => {
  const now = new Date();
  await expect(prometheus.queryRange({ query: 'sum(rate(', start: new Date(now.getTime() - 10_000), end: now, stepSeconds: 1 })).rejects.toThrow(MetricQueryError);
  await expect(new PrometheusProvider('http://127.0.0.1:1').queryRange({ query: 'up', start: now, end: now, stepSeconds: 1 })).rejects.toThrow(/unreachable/);
  await expect(prometheus.queryRange({ query: 'up', start: new Date(now.getTime() - 5000), end: now, stepSeconds: 1 })).rejects.toThrow(/returned 4 series/);
  const none = await prometheus.queryRange({ query: 'sum(no_such_metric)', start: new Date(now.getTime() - 10_000), end: now, stepSeconds: 1 });
  expect(none).toEqual([]);
  const verdict = judge({ ...config, metrics: [metric('ghost')] }, [{ name: 'ghost', baseline: none, canary: none }]);
  expect(verdict.metrics[0].classification).toBe('NodataFailMetric');
  expect(verdict.result).toBe('Fail');
}, 30_000);

describe('item 11: a Prometheus under a path prefix, and failures classified for retry', () => {
  const now = () => new Date();
  const range = () => ({ start: new Date(Date.now() - 5000), end: now(), stepSeconds: 1 });
  const measure = (prometheusUrl: string, query: string) =>
    createCanaryActivities({ canaries: undefined as unknown as KubeCanary, metrics: (url) => new PrometheusProvider(url) }).measureCanary({
      prometheusUrl,
      queries: [{ name: 'm', query }],
      start: new Date(Date.now() - 5000).toISOString(),
      end: now().toISOString(),
      stepSeconds: 1,
    });
  const failureOf = async (p: Promise<unknown>): Promise<ApplicationFailure> => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  };

  test('the path prefix is kept: http://host/prometheus queries /prometheus/api/v1/query_range', async () => {
    for (const base of [`http://127.0.0.1:${PREFIXED_PORT}/prometheus`, `http://127.0.0.1:${PREFIXED_PORT}/prometheus/`, `http://127.0.0.1:${PROXY_PORT}/prometheus`]) {
      const values = await new PrometheusProvider(base).queryRange({ ...range(), query: 'vector(1)' });
      expect(values.length).toBeGreaterThanOrEqual(5);
      expect(values.every((v) => v === 1)).toBe(true);
    }
  }, 30_000);

  test('a 5xx (the proxy while Prometheus is away) is retryable; the query succeeds once it is back', async () => {
    const err = await new PrometheusProvider(`http://127.0.0.1:${PROXY_PORT}/down`).queryRange({ ...range(), query: 'vector(1)' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MetricQueryError);
    expect(err).toMatchObject({ type: 'MetricsUnavailableError', retryable: true, message: expect.stringMatching(/Prometheus unavailable \(HTTP 503\)/) });

    // Through the activity: an ApplicationFailure Temporal retries (the old code made it non-retryable).
    failuresLeft = 1;
    const f = await failureOf(measure(`http://127.0.0.1:${PROXY_PORT}/prometheus`, 'vector(1)'));
    expect(f).toMatchObject({ type: 'MetricsUnavailableError', nonRetryable: false });
    // The next attempt gets through.
    const ok = await measure(`http://127.0.0.1:${PROXY_PORT}/prometheus`, 'vector(1)');
    expect(ok.metrics[0].baseline.length).toBeGreaterThanOrEqual(5);
  }, 30_000);

  test('connection refused is retryable; a query Prometheus rejects (4xx) is not', async () => {
    expect(await failureOf(measure('http://127.0.0.1:1/prometheus', 'vector(1)'))).toMatchObject({ type: 'MetricsUnavailableError', nonRetryable: false });
    const bad = await failureOf(measure(`http://127.0.0.1:${PREFIXED_PORT}/prometheus`, 'sum(rate('));
    expect(bad).toMatchObject({ type: 'MetricQueryError', nonRetryable: true, message: expect.stringMatching(/^m: Prometheus query failed \(HTTP 400 bad_data\)/) });
  }, 30_000);
});
