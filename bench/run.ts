/**
 * Benchmarks that print numbers (`npm run bench -- [overhead|concurrent|promotion]`), on the real local stack.
 *  - overhead:   per-stage orchestration overhead with no-op activities (median, p99)
 *  - concurrent: N releases started at once, all awaiting approval, then all approved: start time,
 *                approval-to-completion latency (p50, p99), worker peak RSS
 *  - inbox:      the approvals UI's inbox with N releases waiting: GET / latency (p50, p99)
 *  - scan:       Trivy on the sample image, cold and warm cache; the scan gate's share of a pipeline
 *  - judge:      the canary judge's speed (10 metrics × 1,000 points) and quality on generated scenarios
 *  - promotion:  promotion by manifest copy vs `docker pull` + `tag` + `push` of a ~100 MB image, side by side
 *  - deploy, clusters: see bench/deploy.ts
 *  - canary-state: history events and bytes per canary interval, cumulative vs incremental (bench/canary-state.ts)
 *  - realnode: pod start on the real node vs docker run of the same image (bench/realnode.ts)
 *  - router:   Traefik's traffic switch and a canary step's orchestration vs the analysis interval (bench/router.ts)
 */
import Docker from 'dockerode';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SlipwayClient } from '../client/client';
import { localTokens } from '../client/identity/tokens';
import { parseConfig, planRelease } from '../model/plan';
import { ensureDocker, ensureRegistry, ensureTemporal, type RegistryEndpoint } from '../client/stack';
import { ensureBaseImage } from '../client/stack/base-image';
import { DockerImageBuilder } from '../activities/docker/builder';
import { EnvCredentialStore } from '../activities/registry/credentials';
import { OciRegistry } from '../activities/registry/oci';
import { dockerFromEnv } from '../workers/builder';
import type { ReleaseInput } from '../model/types';
import { clusterBench, deployBench } from './deploy';

const NS = 'slipway-bench';
const ROOT = join(__dirname, '..', '..');
const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
const print = (line: string) => process.stdout.write(`${line}\n`);

function config(approval = '{ approvers: [alice], timeout: 72h }'): string {
  return `registries: { dev: { type: oci, url: "127.0.0.1:5000", insecure: true } }
environments: { qa: { registry: dev }, prod: { registry: dev, imagePrefix: prod/, approval: ${approval} } }
identity: { local: true }
services: { delivery: { build: { context: services/delivery } } }
`;
}

const plan = (version: string): ReleaseInput => planRelease(parseConfig(config()), { service: 'delivery', version, requester: 'bench' });
const runTag = () => `b${Date.now().toString(36)}`;

interface WorkerMemory {
  peakRssMb: number;
  readyRssMb: number;
  startupPeakMb: number;
  endRssMb: number;
}
const memLine = (m: WorkerMemory) =>
  `worker RSS: peak ${m.peakRssMb.toFixed(0)} MB (startup incl. bundling peaked at ${m.startupPeakMb.toFixed(0)} MB; ${m.readyRssMb.toFixed(0)} MB when ready, ${m.endRssMb.toFixed(0)} MB at the end)`;

async function withNoopWorker<T>(address: string, fn: (pid: number) => Promise<T>): Promise<{ result: T } & WorkerMemory> {
  // The worker reads the release plan from its own configuration, as a real one does.
  const configFile = join(mkdtempSync(join(tmpdir(), 'slipway-bench-')), 'slipway.yaml');
  writeFileSync(configFile, config());
  const child = spawn(process.execPath, [join(__dirname, 'noop-worker.js'), address, NS], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, SLIPWAY_CONFIG: configFile } });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => String(d).includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`noop worker exited ${code}`)));
  });
  const rss = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
  // The high-water mark so far is webpack bundling the workflow code at start; report it apart from the load.
  const atReady = { rss: rss('VmRSS'), hwm: rss('VmHWM') };
  try {
    const result = await fn(child.pid!);
    // VmHWM: the resident set's high-water mark, kept by the kernel for the whole life of the process.
    return { result, peakRssMb: rss('VmHWM'), readyRssMb: atReady.rss, startupPeakMb: atReady.hwm, endRssMb: rss('VmRSS') };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

async function overhead(client: SlipwayClient, address: string, n: number): Promise<void> {
  const { result, ...mem } = await withNoopWorker(address, async () => {
    const perStage: Record<string, number[]> = {};
    const endToEnd: number[] = [];
    const tag = runTag();
    // Warm-up release (workflow bundle load, connections), not counted.
    for (let i = -1; i < n; i++) {
      const t0 = performance.now();
      const { workflowId } = await client.start(plan(`v0.0.${i + 1}-${tag}`));
      await client.waitFor(workflowId, 'approval', { intervalMs: 20 });
      const tApprove = performance.now();
      await client.decide(workflowId, 'approve', { approver: 'alice' });
      const final = await client.result(workflowId);
      const t1 = performance.now();
      if (i < 0) continue;
      for (const s of final.stages) {
        if (s.kind === 'approval') continue;
        (perStage[s.id] ??= []).push(Date.parse(s.endedAt!) - Date.parse(s.startedAt!));
      }
      (perStage['approve→done (client)'] ??= []).push(t1 - tApprove);
      endToEnd.push(t1 - t0);
    }
    return { perStage, endToEnd };
  });
  print(`overhead: ${n} sequential releases, no-op activities, namespace ${NS}`);
  for (const [stage, xs] of Object.entries(result.perStage)) print(`  ${stage.padEnd(24)} median ${fmt(quantile(xs, 0.5))}  p99 ${fmt(quantile(xs, 0.99))}`);
  print(`  ${'whole release (client)'.padEnd(24)} median ${fmt(quantile(result.endToEnd, 0.5))}  p99 ${fmt(quantile(result.endToEnd, 0.99))}  (includes status polling every 20 ms)`);
  print(`  ${memLine(mem)}`);
}

async function concurrent(client: SlipwayClient, address: string, n: number): Promise<void> {
  const { result, ...mem } = await withNoopWorker(address, async () => {
    const tag = runTag();
    const versions = Array.from({ length: n }, (_, i) => `v2.0.${i}-${tag}`);
    const t0 = performance.now();
    const started = await Promise.all(versions.map((v) => client.start(plan(v))));
    const startMs = performance.now() - t0;
    const tWait = performance.now();
    // All awaiting approval: poll visibility-free (status queries), in batches.
    for (const s of started) await client.waitFor(s.workflowId, 'approval', { intervalMs: 100 });
    const allWaitingMs = performance.now() - tWait;
    const latencies: number[] = [];
    const t1 = performance.now();
    await Promise.all(
      started.map(async (s) => {
        const a = performance.now();
        await client.decide(s.workflowId, 'approve', { approver: 'alice' });
        const final = await client.result(s.workflowId);
        if (final.phase !== 'succeeded') throw new Error(`${s.workflowId} ended ${final.phase}`);
        latencies.push(performance.now() - a);
      }),
    );
    return { startMs, allWaitingMs, approveAllMs: performance.now() - t1, latencies };
  });
  print(`concurrent: ${n} releases started at once, all awaiting approval, then all approved`);
  print(`  start ${n}: ${fmt(result.startMs)} (${((n / result.startMs) * 1000).toFixed(0)} starts/s); all awaiting approval after a further ${fmt(result.allWaitingMs)}`);
  print(`  approval → completion latency: p50 ${fmt(quantile(result.latencies, 0.5))}  p99 ${fmt(quantile(result.latencies, 0.99))}  (all ${n} done in ${fmt(result.approveAllMs)})`);
  print(`  ${memLine(mem)}`);
}

async function promotion(rounds: number): Promise<void> {
  const docker = await ensureDocker();
  const [a, b] = await Promise.all([ensureRegistry('registry', 5000), ensureRegistry('registry-b', 5001)]);
  const env = { SLIPWAY_REGISTRY_A_USERNAME: a.username, SLIPWAY_REGISTRY_A_PASSWORD: a.password, SLIPWAY_REGISTRY_B_USERNAME: b.username, SLIPWAY_REGISTRY_B_PASSWORD: b.password };
  const creds = new EnvCredentialStore(env, '/nonexistent');
  const dockerClient = dockerFromEnv({ DOCKER_HOST: docker.host });
  await ensureBaseImage(dockerClient);
  const builder = new DockerImageBuilder(dockerClient, creds);
  const refA = { name: 'a', type: 'oci' as const, host: a.url, insecure: true };
  const refB = { name: 'b', type: 'oci' as const, host: b.url, insecure: true };
  const oci = new OciRegistry(creds);
  const rows: Record<string, { ms: number[]; bytes: number[] }> = {};
  const add = (k: string, ms: number, bytes: number) => ((rows[k] ??= { ms: [], bytes: [] }).ms.push(ms), rows[k].bytes.push(bytes));
  for (let r = 0; r < rounds; r++) {
    // A fresh image each round: Docker remembers where it pushed a layer before and would mount it instead.
    const tag = `${runTag()}-${r}`;
    const src = `${a.url}/bench-big:${tag}`;
    await builder.build({ contextDir: join(ROOT, 'bench', 'big-image'), dockerfile: 'Dockerfile', tag: src, args: { NONCE: tag }, labels: {} }, () => undefined);
    const { digest } = await builder.push(src, refA, () => undefined);
    const info = await dockerClient.getImage(src).inspect();
    if (r === 0) print(`promotion: ${rounds} rounds, each a fresh ${(info.Size / 1e6).toFixed(0)} MB image pushed to ${a.url}, then promoted four ways`);

    let t = performance.now();
    const same = await oci.copy({ source: `${a.url}/bench-big@${digest}`, sourceRegistry: refA, target: `${a.url}/prod/bench-big:${tag}`, targetRegistry: refA }, () => undefined);
    add('manifest copy, same registry', performance.now() - t, same.bytesCopied);

    t = performance.now();
    const cross = await oci.copy({ source: `${a.url}/bench-big@${digest}`, sourceRegistry: refA, target: `${b.url}/prod/bench-big:${tag}`, targetRegistry: refB }, () => undefined);
    add('manifest copy, registry A → B', performance.now() - t, cross.bytesCopied);

    for (const [label, target, reg] of [
      ['docker pull+tag+push, same registry', `${a.url}/prod/bench-big-docker:${tag}`, a],
      ['docker pull+tag+push, A → B', `${b.url}/prod/bench-big-docker:${tag}`, b],
    ] as const) {
      // Remove every reference to the image so the pull really transfers its layers.
      await dockerClient.getImage(info.Id).remove({ force: true }).catch(() => undefined);
      t = performance.now();
      const pulled = await dockerPull(dockerClient, `${a.url}/bench-big@${digest}`, a);
      await dockerClient.getImage(`${a.url}/bench-big@${digest}`).tag({ repo: target.slice(0, target.lastIndexOf(':')), tag });
      const pushedBytes = await dockerPush(dockerClient, target, reg as RegistryEndpoint);
      add(label, performance.now() - t, pulled + pushedBytes);
    }
    await dockerClient.getImage(info.Id).remove({ force: true }).catch(() => undefined);
  }
  const base = (k: string) => quantile(rows[k].ms, 0.5);
  print(`  median wall time and bytes moved through the client (pull + push for docker)`);
  for (const [k, v] of Object.entries(rows)) {
    print(`  ${k.padEnd(38)} median ${fmt(quantile(v.ms, 0.5)).padStart(11)}   bytes ${(quantile(v.bytes, 0.5) / 1e6).toFixed(1).padStart(7)} MB`);
  }
  print(`  ratio same registry (copy / docker): ${(base('manifest copy, same registry') / base('docker pull+tag+push, same registry')).toFixed(3)}`);
  print(`  ratio A → B        (copy / docker): ${(base('manifest copy, registry A → B') / base('docker pull+tag+push, A → B')).toFixed(3)}`);
}

async function inbox(client: SlipwayClient, address: string, n: number, requests = 60): Promise<void> {
  const { result, ...mem } = await withNoopWorker(address, async () => {
    for await (const wf of client.client.workflow.list({ query: "ExecutionStatus = 'Running'" })) {
      await client.client.workflow.getHandle(wf.workflowId, wf.runId).terminate('bench: start from an empty inbox').catch(() => undefined);
    }
    const tag = runTag();
    const versions = Array.from({ length: n }, (_, i) => `v3.0.${i}-${tag}`);
    for (let i = 0; i < versions.length; i += 50) await Promise.all(versions.slice(i, i + 50).map((v) => client.start(plan(v))));
    const deadline = Date.now() + 300_000;
    while ((await client.list({ awaitingApproval: true, limit: n + 10 })).length < n) {
      if (Date.now() > deadline) throw new Error('releases did not all reach approval');
      await new Promise((r) => setTimeout(r, 1000));
    }
    const { buildUiServer } = await import('../client/ui/server');
    const app = await buildUiServer({ slipway: client, config: parseConfig(`${config()}ui: { auth: { mode: local, users: [alice] } }\n`), namespace: NS });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    // Sign in as a browser would: the login form's CSRF token, then the session cookie.
    const loginPage = await fetch(`${base}/login`);
    const csrfCookie = loginPage.headers.getSetCookie()[0].split(';')[0];
    const token = /name="_csrf" value="([^"]+)"/.exec(await loginPage.text())![1];
    const login = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { cookie: csrfCookie, 'content-type': 'application/x-www-form-urlencoded' }, body: `_csrf=${token}&user=alice` });
    const cookie = `${csrfCookie}; ${login.headers.getSetCookie()[0].split(';')[0]}`;
    const timings: Record<string, number[]> = { html: [], json: [] };
    let rows = 0;
    for (let i = 0; i < requests; i++) {
      for (const kind of ['html', 'json'] as const) {
        const t = performance.now();
        const res = await fetch(`${base}/`, { headers: { cookie, accept: kind === 'html' ? 'text/html' : 'application/json' } });
        const body = await res.text();
        timings[kind].push(performance.now() - t);
        if (kind === 'json') rows = JSON.parse(body).length;
      }
    }
    await app.close();
    for await (const wf of client.client.workflow.list({ query: "ExecutionStatus = 'Running'" })) {
      await client.client.workflow.getHandle(wf.workflowId, wf.runId).terminate('bench done').catch(() => undefined);
    }
    return { timings, rows };
  });
  print(`inbox: ${result.rows} releases awaiting approval; GET / over HTTP, ${requests} requests each, one at a time`);
  for (const [kind, xs] of Object.entries(result.timings)) print(`  ${kind.padEnd(5)} p50 ${fmt(quantile(xs, 0.5))}  p99 ${fmt(quantile(xs, 0.99))}`);
  print(`  ${memLine(mem)}`);
}

/** Scan time of the sample image, cold and warm cache, and the scan gate's share of a whole pipeline. */
async function scan(client: SlipwayClient, address: string, rounds: number): Promise<void> {
  const { execFileSync } = await import('node:child_process');
  const { cpSync, mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { TrivyScanner, trivyOptionsFromEnv } = await import('../activities/scanner/trivy');
  const docker = await ensureDocker();
  const reg = await ensureRegistry('registry', 5000);
  const home = join(process.env.HOME!, '.cache', 'slipway');
  const dbCache = join(home, 'bench-trivy');
  execFileSync(join(home, 'bin', 'trivy-fixture-db'), ['-advisories', join(ROOT, 'test', 'fixtures', 'trivy', 'advisories.json'), '-cache-dir', dbCache], { stdio: 'ignore' });
  const creds = new EnvCredentialStore({ SLIPWAY_REGISTRY_DEV_USERNAME: reg.username, SLIPWAY_REGISTRY_DEV_PASSWORD: reg.password }, '/nonexistent');
  const dockerClient = dockerFromEnv({ DOCKER_HOST: docker.host });
  const tag = `${reg.url}/delivery:bench-scan-${runTag()}`;
  await new DockerImageBuilder(dockerClient, creds).build({ contextDir: join(ROOT, 'services', 'delivery'), dockerfile: 'Dockerfile', tag, args: {}, labels: {} }, () => undefined);
  const scanWith = (cacheDir: string) => new TrivyScanner({ ...trivyOptionsFromEnv({ ...process.env, DOCKER_HOST: docker.host }), cacheDir, timeoutMs: 300_000 }, creds);
  const cold: number[] = [];
  const warm: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // Cold: a cache holding only the database, so every layer is analysed.
    const dir = mkdtempSync(join(tmpdir(), 'slipway-bench-trivy-'));
    cpSync(join(dbCache, 'db'), join(dir, 'db'), { recursive: true });
    let t = performance.now();
    await scanWith(dir).scan({ image: tag, source: 'docker' }, () => undefined);
    cold.push(performance.now() - t);
    t = performance.now();
    await scanWith(dir).scan({ image: tag, source: 'docker' }, () => undefined);
    warm.push(performance.now() - t);
    rmSync(dir, { recursive: true, force: true });
  }
  print(`scan: trivy v0.74.0 on the sample image (${tag}), ${rounds} rounds`);
  print(`  cold cache  median ${fmt(quantile(cold, 0.5))}  (min ${fmt(Math.min(...cold))}, max ${fmt(Math.max(...cold))})`);
  print(`  warm cache  median ${fmt(quantile(warm, 0.5))}  (min ${fmt(Math.min(...warm))}, max ${fmt(Math.max(...warm))})`);

  // The gate's share: whole releases through a real worker (build, scan, push, scan:prod, promote; approval excluded).
  const worker = spawn(process.execPath, [join(ROOT, 'dist', 'client', 'cli.js'), 'worker', '--role', 'all'], {
    cwd: ROOT,
    stdio: 'ignore',
    env: { ...process.env, TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: NS, DOCKER_HOST: docker.host, SLIPWAY_BUILDER_ID: 'bench-scan', SLIPWAY_TRIVY_CACHE_DIR: dbCache, SLIPWAY_REGISTRY_DEV_USERNAME: reg.username, SLIPWAY_REGISTRY_DEV_PASSWORD: reg.password },
  });
  try {
    const cfg = config().replace('qa: { registry: dev }', 'qa: { registry: dev, scan: { failOn: high } }').replace('approval: {', 'scan: { failOn: high, rescanAfter: 1s }, approval: {');
    const shares: number[] = [];
    const totals: number[] = [];
    for (let r = 0; r <= rounds; r++) {
      const input = planRelease(parseConfig(cfg), { service: 'delivery', version: `v4.0.${r}-${runTag()}`, requester: 'bench' });
      const { workflowId } = await client.start(input);
      await client.waitFor(workflowId, 'approval', { timeoutMs: 300_000 });
      await client.decide(workflowId, 'approve', { approver: 'alice' });
      const final = await client.result(workflowId);
      if (final.phase !== 'succeeded') throw new Error(`bench release ${workflowId} ended ${final.phase}: ${final.error}`);
      if (r === 0) continue; // warm-up: worker start, first bundle
      const took = (id: string) => {
        const s = final.stages.find((x) => x.id === id)!;
        return Date.parse(s.endedAt!) - Date.parse(s.startedAt!);
      };
      const pipeline = final.stages.filter((s) => s.kind !== 'approval').reduce((sum, s) => sum + took(s.id), 0);
      shares.push((took('scan') + took('scan:prod')) / pipeline);
      totals.push(pipeline);
    }
    print(`  gate share of the pipeline (build+scan+push+scan:prod(rescan)+promote, approval excluded): median ${(quantile(shares, 0.5) * 100).toFixed(0)} % of ${fmt(quantile(totals, 0.5))}`);
  } finally {
    worker.kill('SIGTERM');
  }
}

/**
 * The canary judge: speed on 10 metrics × 1,000 points, and quality on generated scenarios next to a fixed-threshold
 * rule of the kind Argo Rollouts and Flagger use (canary mean more than 10 % above the baseline mean fails).
 */
async function judgeBench(trials: number): Promise<void> {
  const { judge, seededGaussian, seededUniform } = await import('../workflows/canary/judge');
  type Cfg = Parameters<typeof judge>[0];
  const metric = (name: string, critical = false): Cfg['metrics'][number] => ({
    name, groups: [name], direction: 'increase', critical, mustHaveData: false, nanStrategy: 'remove',
    outliers: { strategy: 'keep', factor: 3 }, effectSize: { measure: 'meanRatio', allowedIncrease: 1, allowedDecrease: 1, criticalIncrease: 1, criticalDecrease: 1 },
  });
  const g = seededGaussian(2026);
  const normal = (n: number, mu: number, sd: number) => Array.from({ length: n }, () => mu + sd * g());
  // Heavy tail: a lognormal body with rare 10x outliers.
  const heavy = (n: number, mu: number) => Array.from({ length: n }, () => mu * Math.exp(0.3 * g()) * (Math.abs(g()) > 2.6 ? 10 : 1));
  // Error rate per 10 s window of 50 requests: binomial counts as fractions.
  const uniform = seededUniform(99);
  const errors = (n: number, p: number) => Array.from({ length: n }, () => Array.from({ length: 50 }, () => (uniform() < p ? 1 : 0)).reduce((a: number, b: number) => a + b, 0) / 50);

  // Speed: 10 metrics × 1,000 points per series.
  const cfg10: Cfg = { judge: { confidenceLevel: 0.98, tolerance: 0.25 }, groupWeights: {}, thresholds: { pass: 95, marginal: 75 }, metrics: Array.from({ length: 10 }, (_, i) => metric(`m${i}`)) };
  const data10 = cfg10.metrics.map((m) => ({ name: m.name, baseline: normal(1000, 100, 10), canary: normal(1000, 100, 10) }));
  judge(cfg10, data10);
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    judge(cfg10, data10);
    times.push(performance.now() - t);
  }
  print(`judge: 10 metrics × 1,000 points (baseline and canary each): median ${fmt(quantile(times, 0.5))}, max ${fmt(Math.max(...times))} over 20 runs`);

  // Quality: each scenario judged per interval (20 points each), up to 6 intervals; "fail" when the judge's result is Fail.
  const scenarios: { name: string; gen: (canary: boolean, n: number) => number[]; bad: boolean }[] = [
    { name: 'A/A latency (no change)', gen: (_c, n) => normal(n, 100, 10), bad: false },
    { name: 'A/A heavy-tailed latency', gen: (_c, n) => heavy(n, 100), bad: false },
    { name: 'A/A error rate 2 %', gen: (_c, n) => errors(n, 0.02), bad: false },
    { name: 'latency +5 %', gen: (c, n) => normal(n, c ? 105 : 100, 10), bad: true },
    { name: 'latency +20 %', gen: (c, n) => normal(n, c ? 120 : 100, 10), bad: true },
    { name: 'heavy-tailed latency +20 %', gen: (c, n) => heavy(n, c ? 120 : 100), bad: true },
    { name: 'error rate 1.5× (2 % → 3 %)', gen: (c, n) => errors(n, c ? 0.03 : 0.02), bad: true },
  ];
  const cfg1: Cfg = { ...cfg10, metrics: [metric('m')] };
  const intervals = 6;
  const perInterval = 20;
  print(`judge quality: ${trials} trials per scenario, up to ${intervals} intervals of ${perInterval} points; Kayenta judge (98 %, tolerance 0.25) vs fixed rule (canary mean > 1.10 × baseline mean)`);
  print(`  ${'scenario'.padEnd(30)} ${'judge fails'.padStart(11)} ${'median intervals'.padStart(16)} ${'fixed rule fails'.padStart(16)} ${'median intervals'.padStart(16)}`);
  for (const sc of scenarios) {
    const decide = (rule: (b: number[], c: number[]) => boolean) => {
      let fails = 0;
      const when: number[] = [];
      for (let t = 0; t < trials; t++) {
        const b: number[] = [];
        const c: number[] = [];
        for (let i = 1; i <= intervals; i++) {
          b.push(...sc.gen(false, perInterval));
          c.push(...sc.gen(true, perInterval));
          if (rule(b, c)) {
            fails++;
            when.push(i);
            break;
          }
        }
      }
      return { rate: fails / trials, median: when.length ? quantile(when, 0.5) : NaN };
    };
    const kayenta = decide((b, c) => judge(cfg1, [{ name: 'm', baseline: b, canary: c }]).result === 'Fail');
    const fixed = decide((b, c) => c.reduce((x, y) => x + y, 0) / c.length > 1.1 * (b.reduce((x, y) => x + y, 0) / b.length));
    const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
    print(`  ${sc.name.padEnd(30)} ${pct(kayenta.rate).padStart(11)} ${String(kayenta.median).padStart(16)} ${pct(fixed.rate).padStart(16)} ${String(fixed.median).padStart(16)}${sc.bad ? '' : '   (false positives)'}`);
  }
}

/** Pull through the engine; returns the bytes the engine reported downloading. */
async function dockerPull(docker: Docker, ref: string, reg: RegistryEndpoint): Promise<number> {
  const stream = await docker.pull(ref, { authconfig: { username: reg.username, password: reg.password, serveraddress: reg.url } } as any);
  const totals = new Map<string, number>();
  await new Promise((resolve, reject) =>
    docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve(undefined)), (e: any) => {
      if (e.status === 'Downloading' && e.progressDetail?.total) totals.set(e.id, e.progressDetail.total);
      if (e.error) reject(new Error(e.error));
    }),
  );
  return [...totals.values()].reduce((a, b) => a + b, 0);
}

async function dockerPush(docker: Docker, ref: string, reg: RegistryEndpoint): Promise<number> {
  const stream = (await docker.getImage(ref).push({ authconfig: { username: reg.username, password: reg.password, serveraddress: reg.url } } as any)) as unknown as NodeJS.ReadableStream;
  const totals = new Map<string, number>();
  await new Promise((resolve, reject) =>
    docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve(undefined)), (e: any) => {
      // Push progress reports bytes sent so far (`current`); its `total` is often absent.
      if (e.status === 'Pushing' && e.progressDetail?.current) totals.set(e.id, Math.max(totals.get(e.id) ?? 0, e.progressDetail.current));
      if (e.error) reject(new Error(e.error));
    }),
  );
  return [...totals.values()].reduce((a, b) => a + b, 0);
}

async function main(): Promise<void> {
  const which = process.argv[2] ?? 'all';
  const n = Number(process.argv[3] ?? 0);
  const temporal = await ensureTemporal();
  const client = await SlipwayClient.connect(temporal.address, NS, localTokens());
  print(`slipway bench · ${new Date().toISOString()} · node ${process.version}`);
  if (which === 'overhead' || which === 'all') await overhead(client, temporal.address, n || 50);
  if (which === 'concurrent' || which === 'all') await concurrent(client, temporal.address, n || 200);
  if (which === 'inbox' || which === 'all') await inbox(client, temporal.address, n || 500);
  if (which === 'promotion' || which === 'all') await promotion(n || 3);
  if (which === 'scan' || which === 'all') await scan(client, temporal.address, n || 3);
  if (which === 'judge' || which === 'all') await judgeBench(n || 200);
  if (which === 'deploy' || which === 'all') await deployBench(n || 5, ROOT);
  if (which === 'clusters' || which === 'all') await clusterBench(n || 3);
  if (which === 'canary-state' || which === 'all') await (await import('./canary-state')).canaryStateBench(n ? [n] : undefined);
  if (which === 'realnode' || which === 'all') await (await import('./realnode')).realNodeBench(n || 5, ROOT);
  if (which === 'router' || which === 'all') await (await import('./router')).routerBench(n || 5);
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
