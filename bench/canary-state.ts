/**
 * Canary state (`npm run bench -- canary-state`): the release workflow's canary loop at 10, 60 and 120 analysis
 * intervals, activities mocked, metrics from a synthetic Prometheus, on a time-skipping Temporal test server (the
 * intervals keep their length in workflow time and pass at once). Printed side by side: history events and bytes per
 * interval when every interval queries the whole analysis so far (cumulative: how runs from before the
 * canary-incremental-measure patch behave) and when it fetches only its new points (incremental: runs since).
 *
 * The cumulative runs use the same workflow code, bundled with `patched('canary-incremental-measure')` answering
 * false — what a replay of an older history sees — so both columns come from the code that ships.
 */
import { Context } from '@temporalio/activity';
import { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { NormalModuleReplacementPlugin } from 'webpack';
import { SlipwayClient } from '../client/client';
import { DecisionSigner, type DecisionRequest } from '../client/identity/signer';
import type { DecisionTokens } from '../client/identity/tokens';
import { defaultKeyDir } from '../host/keys';
import { parseConfig, planRelease } from '../model/plan';
import { BUILD_QUEUE, ORCHESTRATOR_QUEUE, hostQueue } from '../model/queues';
import { ALL_SEARCH_ATTRIBUTES } from '../model/search-attributes';
import type { CanaryInterval, MeasureCanaryInput, ReleaseStatus } from '../model/types';
import { timeSkippingServer } from '../test/setup/stack-info';
import { canonicalJson, sha256Of, trustAnchorsOf } from '../workers/plan';
import { seededUniform } from '../workflows/canary/judge';
import { CANARY_INCREMENTAL_PATCH } from '../workflows/release/patches';
import type { SlipwayActivities } from '../activities/contract';
import { noopActivities } from './noop-worker';

export type CanaryMode = 'cumulative' | 'incremental';
/** The repository, whether this runs compiled (dist/bench) or from source. */
const ROOT = __dirname.includes(`${sep}dist${sep}`) ? join(__dirname, '..', '..') : join(__dirname, '..');
const HOST = 'canary-state-bench';
const print = (line: string) => process.stdout.write(`${line}\n`);

/**
 * A Prometheus range query over made-up series: the value at each evaluation instant (start + k·step ≤ end) depends
 * only on its step index since `anchorMs` (the analysis start), the metric and the track, so two runs started at
 * different times see the same data. The canary's latency is 10 % higher: enough for the judge to call it High once
 * it has seen enough points, so the score moves with the data.
 */
export function syntheticRange(query: string, anchorMs: number, startMs: number, endMs: number, stepSeconds: number): number[] {
  const stepMs = stepSeconds * 1000;
  const canary = query.includes('"canary"');
  const latency = query.includes('latency');
  const out: number[] = [];
  for (let t = startMs; t <= endMs; t += stepMs) {
    const index = Math.round((t - anchorMs) / stepMs);
    const u = seededUniform((index * 2654435761 + (latency ? 7919 : 0) + (canary ? 104729 : 0)) >>> 0);
    const g = Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
    out.push(latency ? (canary ? 110 : 100) * (1 + 0.1 * g) : 0.01 * (1 + 0.2 * g));
  }
  return out;
}

/** The queries the synthetic Prometheus answers (`$track` as the real ones). */
const QUERIES = `{ errors: 'errors{track="$track"}', latency: 'latency{track="$track"}' }`;

/** QA, then production with a canary of `intervals` analysis intervals; thresholds low enough that a High latency passes. */
export function canaryStateConfig(intervals: number, intervalSeconds: number, stepSeconds: number, steps = `[ { setWeight: 20 }, { analysis: { duration: ${intervals * intervalSeconds}s, interval: ${intervalSeconds}s } } ]`): string {
  return `
registries: { dev: { type: oci, url: "127.0.0.1:5000", insecure: true } }
environments:
  qa: { registry: dev }
  prod:
    registry: dev
    kubeContext: unused
    namespace: canary-state
    deploy: { timeout: 60s, smoke: [ { type: rollout } ] }
    canary:
      prometheus: { url: "http://127.0.0.1:1", stepSeconds: ${stepSeconds} }
      queries: ${QUERIES}
      judge:
        metrics:
          - { name: errors, groups: [errors], direction: increase, nanStrategy: replace }
          - { name: latency, groups: [latency], direction: increase }
        groupWeights: { errors: 80, latency: 20 }
        thresholds: { pass: 50, marginal: 10 }
      steps: ${steps}
identity: { local: true }
services:
  delivery:
    build: { context: services/delivery }
    chart: { path: services/delivery/chart }
`;
}

/** The workflow code bundled as it ships, or with the incremental patch answering false (the cumulative loop). */
export async function canaryBundle(mode: CanaryMode): Promise<string> {
  const logger = { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} };
  const workflowsPath = require.resolve('../workflows');
  if (mode === 'incremental') return (await bundleWorkflowCode({ workflowsPath, logger: logger as never })).code;
  const shim = join(mkdtempSync(join(tmpdir(), 'slipway-canary-state-')), 'patched-off.js');
  writeFileSync(
    shim,
    `const wf = require(${JSON.stringify(require.resolve('@temporalio/workflow'))});
module.exports = { ...wf, patched: (id) => (id === ${JSON.stringify(CANARY_INCREMENTAL_PATCH)} ? false : wf.patched(id)) };
`,
  );
  const { code } = await bundleWorkflowCode({
    workflowsPath,
    logger: logger as never,
    // Only the canary loop's import is replaced; every other module keeps the real SDK.
    webpackConfigHook: (config) => {
      const swap = new NormalModuleReplacementPlugin(/^@temporalio\/workflow$/, (res: { request: string; contextInfo?: { issuer?: string } }) => {
        if (/canary-loop\.[jt]s$/.test(res.contextInfo?.issuer ?? '')) res.request = shim;
      });
      return { ...config, plugins: [...(config.plugins ?? []), swap] };
    },
  });
  if (!code.includes('patched-off')) throw new Error('the cumulative bundle did not take the patch shim');
  return code;
}

/** Tokens issued at the test server's time: after a jump its clock runs ahead of the wall clock. */
class ServerClockTokens implements DecisionTokens {
  private readonly signer = DecisionSigner.fromKeyDir(defaultKeyDir(), 'local', 'local');
  constructor(private readonly env: TestWorkflowEnvironment) {}
  async token(req: DecisionRequest): Promise<string> {
    const iat = Math.floor((await this.env.currentTimeMs()) / 1000);
    return this.signer.sign(req, { iat, exp: iat + this.signer.ttlSeconds });
  }
}

export interface CanaryStateRun {
  mode: CanaryMode;
  intervals: number;
  events: number;
  bytes: number;
  /** measureCanary calls, the bytes of their completion events (the measurements), and of the largest one. */
  measures: number;
  resultBytes: number;
  largestResultBytes: number;
  scores: CanaryInterval[];
  phase: ReleaseStatus['phase'];
}

/** How big a history is, as the server stores and sends it. */
function historySize(history: temporal.api.history.v1.IHistory): Pick<CanaryStateRun, 'events' | 'bytes' | 'measures' | 'resultBytes' | 'largestResultBytes'> {
  const events = history.events ?? [];
  const measureIds = new Set(events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'measureCanary').map((e) => Number(e.eventId)));
  const results = events
    .filter((e) => measureIds.has(Number(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? -1)))
    .map((e) => temporal.api.history.v1.HistoryEvent.encode(e).finish().length);
  return { events: events.length, bytes: temporal.api.history.v1.History.encode(history).finish().length, measures: measureIds.size, resultBytes: results.reduce((a, b) => a + b, 0), largestResultBytes: Math.max(0, ...results) };
}

/**
 * Runs the release workflow's canary loop once per mode and interval count, on one time-skipping test server.
 * `steps` replaces the canary's steps (one analysis of `count` intervals); `bundles` may hand in built code per mode.
 */
export async function runCanaryState(opts: { counts: number[]; modes?: CanaryMode[]; intervalSeconds?: number; stepSeconds?: number; steps?: string; bundles?: Partial<Record<CanaryMode, string>> }): Promise<CanaryStateRun[]> {
  const { counts, modes = ['cumulative', 'incremental'], intervalSeconds = 60, stepSeconds = 10 } = opts;
  try {
    // The test server lacks newer capabilities and the SDK's core warns about it per worker: only errors here.
    Runtime.install({ logger: new DefaultLogger('ERROR'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } });
  } catch {
    /* already installed */
  }
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: timeSkippingServer() } } });
  const runs: CanaryStateRun[] = [];
  try {
    const namespace = env.namespace ?? 'default';
    const KEYWORD = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
    await env.connection.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(ALL_SEARCH_ATTRIBUTES.map((sa) => [sa.name, KEYWORD])) });
    const plans = new Map<string, string>();
    const anchors = new Map<string, number>();
    const acts: SlipwayActivities = {
      ...noopActivities(`sha256:${'c'.repeat(64)}`, HOST),
      async resolveRelease(req) {
        const cfg = parseConfig(plans.get(req.version)!);
        const plan = planRelease(cfg, req);
        return { plan, planDigest: sha256Of(canonicalJson(plan)), trust: trustAnchorsOf(cfg.identity, ROOT), source: 'canary-state bench' };
      },
      async inspectDeploy() {
        // A release already runs there: the deploy goes through the canary.
        return { revision: 3, status: 'deployed' };
      },
      async measureCanary(i: MeasureCanaryInput) {
        const wf = Context.current().info.workflowExecution?.workflowId ?? '';
        const start = Date.parse(i.start);
        // The analysis start is the first range's start, in both modes.
        if (!anchors.has(wf)) anchors.set(wf, start);
        return { metrics: i.queries.map((q) => ({ name: q.name, baseline: syntheticRange(q.query.replaceAll('$track', 'baseline'), anchors.get(wf)!, start, Date.parse(i.end), i.stepSeconds), canary: syntheticRange(q.query.replaceAll('$track', 'canary'), anchors.get(wf)!, start, Date.parse(i.end), i.stepSeconds) })) };
      },
    };
    const slipway = new SlipwayClient(env.client as Client, ORCHESTRATOR_QUEUE, new ServerClockTokens(env));
    for (const mode of modes) {
      const code = opts.bundles?.[mode] ?? (await canaryBundle(mode));
      const common = { connection: env.nativeConnection, namespace, activities: acts };
      const workers = await Promise.all([
        Worker.create({ ...common, taskQueue: ORCHESTRATOR_QUEUE, workflowBundle: { code } }),
        Worker.create({ ...common, taskQueue: BUILD_QUEUE }),
        Worker.create({ ...common, taskQueue: hostQueue(HOST) }),
      ]);
      const running = workers.map((w) => w.run());
      try {
        for (const n of counts) {
          const version = `v1.${n}.0-${mode}-${randomBytes(3).toString('hex')}`;
          plans.set(version, canaryStateConfig(n, intervalSeconds, stepSeconds, opts.steps));
          const { workflowId } = await slipway.start({ service: 'delivery', version, requester: 'bench' });
          const handle = env.client.workflow.getHandle(workflowId);
          let failure = '';
          // A failed release carries its status in the failure's details.
          const status = (await handle.result().catch((err) => {
            failure = String(err?.cause?.message ?? err?.message);
            return err?.cause?.details?.[0];
          })) as ReleaseStatus | undefined;
          if (!status?.canary) throw new Error(`${mode} run of ${n} intervals ended without a canary status: ${status?.error ?? failure}`);
          runs.push({ mode, intervals: n, ...historySize(await handle.fetchHistory()), scores: status.canary.intervals, phase: status.phase });
        }
      } finally {
        workers.forEach((w) => w.shutdown());
        await Promise.allSettled(running);
      }
    }
  } finally {
    await env.teardown();
  }
  return runs;
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

/** The bench's table: for each interval count, the cumulative and incremental runs side by side. */
export async function canaryStateBench(counts = [10, 60, 120]): Promise<void> {
  const intervalSeconds = 60;
  const stepSeconds = 10;
  const runs = await runCanaryState({ counts, intervalSeconds, stepSeconds });
  print(`canary state: release workflow's canary loop, 2 metrics, interval ${intervalSeconds} s, Prometheus step ${stepSeconds} s (${intervalSeconds / stepSeconds} points per track per interval), time-skipping server`);
  print(`  ${'intervals'.padStart(9)} | ${'cumulative: events/iv'.padStart(21)} ${'bytes/iv'.padStart(10)} ${'history'.padStart(10)} ${'largest result'.padStart(14)} | ${'incremental: events/iv'.padStart(22)} ${'bytes/iv'.padStart(10)} ${'history'.padStart(10)} ${'largest result'.padStart(14)} | same scores`);
  for (const n of counts) {
    const [c, i] = (['cumulative', 'incremental'] as const).map((m) => runs.find((r) => r.mode === m && r.intervals === n)!);
    const same = JSON.stringify(c.scores.map((s) => [s.score, s.metrics])) === JSON.stringify(i.scores.map((s) => [s.score, s.metrics]));
    const cols = (r: CanaryStateRun, w: number) => `${(r.events / n).toFixed(1).padStart(w)} ${kb(r.bytes / n).padStart(10)} ${kb(r.bytes).padStart(10)} ${kb(r.largestResultBytes).padStart(14)}`;
    print(`  ${String(n).padStart(9)} | ${cols(c, 21)} | ${cols(i, 22)} | ${same ? 'yes' : 'NO'} (${c.phase}/${i.phase})`);
  }
  // The marginal cost, without the release's fixed start-up events: what each further interval added to the history.
  for (let k = 1; k < counts.length; k++) {
    const [a, b] = [counts[k - 1], counts[k]];
    const added = (m: CanaryMode) => kb((runs.find((r) => r.mode === m && r.intervals === b)!.bytes - runs.find((r) => r.mode === m && r.intervals === a)!.bytes) / (b - a));
    print(`  each interval from ${a} to ${b} added: cumulative ${added('cumulative')}, incremental ${added('incremental')}`);
  }
}
