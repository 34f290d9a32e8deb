/**
 * The Prometheus MetricProvider against a real Prometheus (Debian's) scraping real processes of the sample service
 * under local load — a baseline, a healthy canary and a canary with injected errors and latency — and the canary judge
 * on what it returns. (The release workflow's canary loop on these metrics: test/integration/canary.test.ts.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetricQueryError, PrometheusProvider, trackQuery } from '../../activities/metrics/prometheus';
import { findBinary, portOpen, waitFor } from '../../client/stack/process';
import { judge, type JudgeConfig, type MetricConfig } from '../../workflows/canary/judge';
import { ROOT } from '../helpers';

const PROM_PORT = 19090;
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
  for (const t of TARGETS) await waitFor(`delivery on ${t.port}`, () => portOpen(t.port), 10_000);
  await waitFor('prometheus', () => portOpen(PROM_PORT), 30_000);

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
