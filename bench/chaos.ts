/**
 * Chaos: the worker process (the real `slipway worker --role all`, orchestrator and builder in one process) is
 * killed with SIGKILL — its whole process group — at stage boundaries and at seeded random points inside build,
 * scan, push, chart packaging, QA/production `helm upgrade` and promotion, then restarted. Every release must
 * complete or fail cleanly, with no step done twice (Helm revisions, completed builds/pushes/copies) and no tool
 * process (helm, trivy) left running by a dead worker.
 *
 * `npm run chaos` runs the whole matrix on the local stack and prints the numbers; SLIPWAY_CHAOS_SEED reproduces
 * a run. test/integration/chaos.test.ts runs a seeded sample of it within the CI budget.
 *
 * Canary analysis (CANARY_KILL_POINTS): a second release into a namespace where a chaos release already succeeded
 * runs production as a canary (bench/chaos-canary.ts: replica-ratio traffic, two tracks measured by a Prometheus of
 * the run's own), healthy or failing by its metrics; the worker is killed while the weight is set, during an
 * interval's measurement, during promotion (Helm upgrade, canary removal) or during the rollback of a failing canary.
 * Such a release must end promoted or rolled back as its metrics say, with no canary Deployment or Service left,
 * the stable Deployment as the outcome says, and production's Helm history changed once (promoted) or not at all.
 */
import { Client, Connection } from '@temporalio/client';
import { seededUniform } from '../workflows/canary/judge';
import { temporal } from '@temporalio/proto';
import { spawn, type ChildProcess, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { SlipwayClient } from '../client/client';
import { localTokens } from '../client/identity/tokens';
import { parseConfig } from '../model/plan';
import { HelmDeployer, helmOptionsFromEnv } from '../activities/helm/helm';
import { k8s } from '../activities/kubernetes/client';
import { KubeCluster } from '../activities/kubernetes/cluster';
import { EnvCredentialStore } from '../activities/registry/credentials';
import { OciRegistryClient } from '../activities/registry/oci-client';
import { ALL_SEARCH_ATTRIBUTES } from '../model/search-attributes';
import { ORCHESTRATOR_QUEUE } from '../model/queues';
import type { ReleaseStatus } from '../model/types';
import { CANARY_WEIGHT_STEPS, CanaryTracks, canaryConfigText, canaryOutcomeProblems, localImage, stableReplicas, type CanaryMetrics } from './chaos-canary';

const EventType = temporal.api.enums.v1.EventType;
const PendingState = temporal.api.enums.v1.PendingActivityState;
/** A namespace of its own: workers other tests run on the shared namespaces would otherwise take its tasks. */
export const CHAOS_NAMESPACE = 'slipway-chaos';
// Compiled this file runs from dist/bench/, under jest from bench/.
const ROOT = basename(join(__dirname, '..')) === 'dist' ? join(__dirname, '..', '..') : join(__dirname, '..');

export interface ChaosStack {
  temporal: string;
  docker: string;
  registry: { url: string; username: string; password: string };
  kubeconfig: string;
  contexts: Record<string, string>;
  trivyCache: string;
}

/** `label`: what the point is, when the stage and activity do not say it (canary points). */
export type KillPoint = { kind: 'inside'; stage: string; activity: string; label?: string } | { kind: 'boundary'; stage: string; label?: string };
export type CanaryKillPoint = KillPoint & { metrics: CanaryMetrics };

/** Every kill point of the chaos release, in pipeline order. */
export const KILL_POINTS: KillPoint[] = [
  { kind: 'boundary', stage: 'preflight' },
  { kind: 'inside', stage: 'build', activity: 'buildImage' },
  { kind: 'boundary', stage: 'build' },
  { kind: 'inside', stage: 'scan', activity: 'scanImage' },
  { kind: 'boundary', stage: 'scan' },
  { kind: 'inside', stage: 'push', activity: 'pushImage' },
  { kind: 'boundary', stage: 'push' },
  { kind: 'inside', stage: 'chart', activity: 'packageChart' },
  { kind: 'boundary', stage: 'chart' },
  { kind: 'inside', stage: 'deploy:qa', activity: 'deployChart' },
  { kind: 'boundary', stage: 'deploy:qa' },
  { kind: 'boundary', stage: 'smoke:qa' },
  { kind: 'boundary', stage: 'approval:prod' },
  { kind: 'inside', stage: 'promote:prod', activity: 'copyImage' },
  { kind: 'boundary', stage: 'promote:prod' },
  { kind: 'inside', stage: 'deploy:prod', activity: 'deployChart' },
  { kind: 'boundary', stage: 'deploy:prod' },
];

/**
 * Kill points inside production's canary analysis, in pipeline order. A healthy canary is killed into while its
 * weight is set, while an interval is measured and at both halves of its promotion; a failing one while its weight
 * is set, while the interval that fails it is measured, and during its rollback (the canary's removal, then QA's
 * Helm rollback). The rollback's removal runs outside any stage, so its stage is the failed canary's.
 */
export const CANARY_KILL_POINTS: CanaryKillPoint[] = [
  { kind: 'inside', stage: 'canary:prod', activity: 'setCanaryWeight', metrics: 'healthy', label: 'healthy canary: while the weight is set' },
  { kind: 'inside', stage: 'canary:prod', activity: 'measureCanary', metrics: 'healthy', label: 'healthy canary: during an interval\'s measurement' },
  { kind: 'inside', stage: 'canary:prod', activity: 'deployChart', metrics: 'healthy', label: 'healthy canary: during promotion\'s helm upgrade' },
  { kind: 'inside', stage: 'canary:prod', activity: 'removeCanary', metrics: 'healthy', label: 'healthy canary: during promotion\'s canary removal' },
  { kind: 'boundary', stage: 'canary:prod', metrics: 'healthy', label: 'healthy canary: after promotion' },
  { kind: 'inside', stage: 'canary:prod', activity: 'setCanaryWeight', metrics: 'failing', label: 'failing canary: while the weight is set' },
  { kind: 'inside', stage: 'canary:prod', activity: 'measureCanary', metrics: 'failing', label: 'failing canary: during an interval\'s measurement' },
  { kind: 'inside', stage: 'canary:prod', activity: 'removeCanary', metrics: 'failing', label: 'failing canary: during the rollback\'s canary removal' },
  { kind: 'inside', stage: 'rollback:qa', activity: 'rollbackDeploy', metrics: 'failing', label: 'failing canary: during QA\'s helm rollback' },
];

/** The canary matrix: one release per kind of metrics, each taking its points in pipeline order. */
export function canaryRounds(points: CanaryKillPoint[] = CANARY_KILL_POINTS): { metrics: CanaryMetrics; points: CanaryKillPoint[] }[] {
  return (['healthy', 'failing'] as const).map((metrics) => ({ metrics, points: points.filter((p) => p.metrics === metrics) })).filter((r) => r.points.length);
}

/** How far into a step a kill may land (ms after the activity started): about the step's usual length here. */
const INSIDE_SPREAD_MS: Record<string, number> = {
  buildImage: 2000,
  scanImage: 2000,
  pushImage: 300,
  packageChart: 300,
  deployChart: 2000,
  copyImage: 150,
  // A replica change and a Prometheus range query take tens of milliseconds on this stack.
  setCanaryWeight: 40,
  measureCanary: 30,
  removeCanary: 60,
  rollbackDeploy: 1500,
};

export const pointName = (p: KillPoint): string => {
  const where = p.kind === 'inside' ? `inside ${p.stage} (${p.activity})` : `after ${p.stage}`;
  return p.label ? `${p.label} [${where}]` : where;
};

/** The judge's seeded generator (mulberry32), so a run is reproduced from its seed. */
export const seededRandom = seededUniform;

export function chaosSeed(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SLIPWAY_CHAOS_SEED;
  if (raw === undefined || raw === '') return randomBytes(4).readUInt32LE(0);
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`SLIPWAY_CHAOS_SEED must be an integer between 0 and 4294967295, not "${raw}"`);
  return n;
}

/** `n` kill points of `from` chosen by the generator, kept in pipeline order (one release can take them all). */
export function samplePoints<P extends KillPoint = KillPoint>(rand: () => number, n: number, from: P[] = KILL_POINTS as P[]): P[] {
  const idx = from.map((_, i) => i);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, n).sort((a, b) => a - b).map((i) => from[i]);
}

/** The whole matrix: every kill point once, dealt round-robin over `releases` releases, each in pipeline order. */
export function matrixRounds(releases: number): KillPoint[][] {
  const rounds: KillPoint[][] = Array.from({ length: releases }, () => []);
  KILL_POINTS.forEach((p, i) => rounds[i % releases].push(p));
  return rounds;
}

interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  comm: string;
  state: string;
}

function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: it runs to the last ')'.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const [state, ppid, pgid] = stat.slice(close + 2).split(' ');
    return { pid, ppid: Number(ppid), pgid: Number(pgid), comm, state };
  } catch {
    return undefined;
  }
}

/** Live (non-zombie) processes whose environment carries `SLIPWAY_CHAOS_TAG=<tag>`: everything a worker started. */
export function taggedProcesses(tag: string): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${d}/environ`, 'utf8');
    } catch {
      continue;
    }
    if (!environ.split('\0').includes(`SLIPWAY_CHAOS_TAG=${tag}`)) continue;
    const info = procInfo(Number(d));
    if (info && info.state !== 'Z') out.push(info);
  }
  return out;
}

export interface Orphan {
  point: string;
  pid: number;
  comm: string;
  /** Whether it was still in the killed worker's process group (a SIGKILL to the group cannot miss it) or had left it. */
  ownGroup: boolean;
}

/** One `slipway worker` process, leader of its own process group; every process it starts inherits its tag. */
class WorkerProcess {
  readonly tag = `chaos-${randomBytes(6).toString('hex')}`;
  readonly child: ChildProcess;
  private readonly exited: Promise<void>;

  /** `workspace`: the worker's directory, holding the slipway.yaml it reads each release's plan from. */
  constructor(env: NodeJS.ProcessEnv, log: string, workspace: string) {
    const out = openSync(log, 'a');
    this.child = spawn(process.execPath, [join(ROOT, 'dist', 'client', 'cli.js'), '--config', join(workspace, 'slipway.yaml'), 'worker', '--role', 'all'], {
      cwd: workspace,
      env: { ...env, SLIPWAY_CHAOS_TAG: this.tag },
      detached: true,
      stdio: ['ignore', out, out],
    });
    this.exited = new Promise((r) => this.child.once('exit', () => r()));
  }

  /** kill -9 of the whole process group; returns what the worker started and is still alive afterwards. */
  async kill(point: string): Promise<Orphan[]> {
    const pgid = this.child.pid!;
    // Only while the leader lives: a dead group's id may belong to someone else's process group by now.
    if (this.child.exitCode === null && this.child.signalCode === null) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await this.exited;
    // Give the kernel a moment to deliver the signal to every member of the group.
    await sleep(300);
    return taggedProcesses(this.tag).map((p) => ({ point, pid: p.pid, comm: p.comm, ownGroup: p.pgid === pgid }));
  }

  /** Ends what is left of this worker's processes (cleanup after counting; these are processes we started). */
  reap(): void {
    for (const p of taggedProcesses(this.tag)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface KillRecord {
  point: string;
  fired: boolean;
  /** For kills inside a step: whether the step was still running when the signal was sent. */
  landedInside?: boolean;
  delayMs?: number;
  /** Time from the kill until the release made progress again (the next stage ended or the release did). */
  recoveryMs?: number;
}

export interface ReleaseReport {
  workflowId: string;
  /** The production namespace (QA's is `<ns>-qa`), its version and digest: a later canary release's baseline. */
  ns: string;
  version: string;
  digest?: string;
  points: KillRecord[];
  kills: number;
  phase: string;
  error?: string;
  completedCleanly: boolean;
  durationMs: number;
  duplicates: string[];
  orphans: Orphan[];
  /** State the outcome does not account for (a canary's release or cluster state against its metrics). */
  problems: string[];
}

export interface ChaosContext {
  stack: ChaosStack;
  slipway: SlipwayClient;
  /** The chaos namespace's client (history long polls). */
  client?: Client;
  workDir: string;
  log: (line: string) => void;
}

function workerEnv(stack: ChaosStack): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: `${join(homedir(), '.cache', 'slipway', 'bin')}:${process.env.PATH}`,
    TEMPORAL_ADDRESS: stack.temporal,
    TEMPORAL_NAMESPACE: CHAOS_NAMESPACE,
    DOCKER_HOST: stack.docker,
    SLIPWAY_BUILDER_ID: 'chaos-host',
    SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username,
    SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password,
    SLIPWAY_TRIVY_CACHE_DIR: stack.trivyCache,
    KUBECONFIG: stack.kubeconfig,
  };
}

/**
 * QA (scan, deploy, rollout smoke) and production (approval, promotion, deploy) on the two local clusters; with
 * `canaryPrometheus`, production runs a new release as a canary first (measured by that Prometheus).
 */
export function chaosConfigText(stack: ChaosStack, ns: string, canaryPrometheus?: string): string {
  return `
registries:
  dev: { type: oci, url: "${stack.registry.url}", insecure: true }
environments:
  qa:
    registry: dev
    scan: { failOn: critical }
    kubeContext: ${stack.contexts.qa}
    namespace: ${ns}-qa
    deploy: { timeout: 120s, smoke: [ { type: rollout } ] }
  prod:
    registry: dev
    imagePrefix: prod/
    kubeContext: ${stack.contexts.prod}
    namespace: ${ns}
    approval: { approvers: [alice] }
    deploy: { timeout: 120s, smoke: [ { type: rollout } ] }
${canaryPrometheus ? `    canary: ${canaryConfigText(canaryPrometheus)}\n` : ''}identity: { local: true }
services:
  delivery:
    build: { context: services/delivery, args: { VERSION: chaos } }
    chart:
      path: services/delivery/chart
      values: { replicaCount: 1 }
`;
}

/** Registers the chaos namespace (and the search attributes releases set) when the server lacks them. */
export async function ensureChaosNamespace(address: string): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    try {
      await connection.workflowService.describeNamespace({ namespace: CHAOS_NAMESPACE });
    } catch {
      await connection.workflowService.registerNamespace({ namespace: CHAOS_NAMESPACE, workflowExecutionRetentionPeriod: { seconds: 86_400 as never } });
    }
    const KEYWORD = 2; // temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    // A new namespace reaches the server's namespace cache after some seconds.
    const missing = async () => {
      for (let i = 0; ; i++) {
        try {
          const existing = await connection.operatorService.listSearchAttributes({ namespace: CHAOS_NAMESPACE });
          return ALL_SEARCH_ATTRIBUTES.filter((sa) => !existing.customAttributes?.[sa.name]);
        } catch (err) {
          if (i >= 60) throw err;
          await sleep(500);
        }
      }
    };
    const absent = await missing();
    if (absent.length) await connection.operatorService.addSearchAttributes({ namespace: CHAOS_NAMESPACE, searchAttributes: Object.fromEntries(absent.map((sa) => [sa.name, KEYWORD])) });
    for (let i = 0; i < 60 && (await missing()).length; i++) await sleep(500);
    // Starting a workflow needs the namespace in the frontend's cache too.
    for (let i = 0; i < 60; i++) {
      try {
        await connection.workflowService.listWorkflowExecutions({ namespace: CHAOS_NAMESPACE, pageSize: 1 });
        break;
      } catch {
        await sleep(500);
      }
    }
  } finally {
    await connection.close();
  }
}

async function statusOf(slipway: SlipwayClient, id: string): Promise<ReleaseStatus | undefined> {
  try {
    return await slipway.status(id);
  } catch {
    return undefined; // no worker answers queries right now
  }
}

const TERMINAL = ['succeeded', 'failed', 'rejected', 'expired', 'aborted'];
const stageDone = (s: ReleaseStatus, id: string) => ['succeeded', 'skipped'].includes(s.stages.find((x) => x.id === id)?.state ?? '');

/** Waits for a kill point; returns whether it was reached (a release that ended first never reaches it). */
async function reach(ctx: ChaosContext, id: string, p: KillPoint, rand: () => number, timeoutMs: number): Promise<Omit<KillRecord, 'point' | 'recoveryMs'>> {
  const deadline = Date.now() + timeoutMs;
  const started = async (activity: string) =>
    ((await ctx.slipway.handle(id).describe()).raw.pendingActivities ?? []).some((a) => a.activityType?.name === activity && a.state === PendingState.PENDING_ACTIVITY_STATE_STARTED);
  // An activity that runs once per release (all but deployChart) is caught by describe alone, polled fast: scans
  // and chart packaging last well under a second here, shorter than a status query round.
  const unique = p.kind === 'inside' && p.activity !== 'deployChart';
  if (p.kind === 'inside' && WATCHED.has(p.activity) && ctx.client) {
    const r = await scheduled(ctx.client, id, p.activity, deadline);
    if (r === 'ended') return { fired: false };
    if (r === 'scheduled') return fireInside(ctx, id, p.activity, rand);
  }
  for (let i = 0; Date.now() < deadline; i++) {
    if (unique && (await started(p.activity))) return fireInside(ctx, id, p.activity, rand);
    if (!unique || i % 20 === 0) {
      const s = await statusOf(ctx.slipway, id);
      if (s && TERMINAL.includes(s.phase)) return { fired: false };
      if (s && p.kind === 'boundary' && stageDone(s, p.stage)) return { fired: true };
      if (s && p.kind === 'inside') {
        if (stageDone(s, p.stage)) return { fired: false }; // the step ended between two polls
        if (!unique && s.stages.find((x) => x.id === p.stage)?.state === 'running' && (await started(p.activity))) return fireInside(ctx, id, p.activity, rand);
      }
    }
    await sleep(unique ? 20 : 100);
  }
  throw new Error(`kill point "${pointName(p)}" not reached within ${timeoutMs / 1000}s`);
}

/**
 * Steps of a few tens of milliseconds (a replica change, a Prometheus query): a describe poll every 20 ms misses
 * most of them, so their scheduling is watched in the history instead, by long poll (seen within milliseconds).
 */
const WATCHED = new Set(['setCanaryWeight', 'measureCanary', 'removeCanary', 'rollbackDeploy']);

/**
 * Long-polls the release's history until an `activity` is scheduled and not yet closed ('scheduled'), the release
 * ends ('ended') or the deadline passes ('timeout'). One that ran and closed before the watch began does not count.
 */
async function scheduled(client: Client, id: string, activity: string, deadline: number): Promise<'scheduled' | 'ended' | 'timeout'> {
  const open = new Set<string>();
  const names = new Map<string, string>();
  let nextPageToken: Uint8Array | undefined;
  while (Date.now() < deadline) {
    const r = await client.workflowService.getWorkflowExecutionHistory({ namespace: CHAOS_NAMESPACE, execution: { workflowId: id }, waitNewEvent: true, ...(nextPageToken ? { nextPageToken } : {}) });
    for (const e of r.history?.events ?? []) {
      const a = e.activityTaskScheduledEventAttributes;
      if (a) {
        names.set(String(e.eventId), a.activityType?.name ?? '');
        open.add(String(e.eventId));
      }
      const closed = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes ?? e.activityTaskCanceledEventAttributes;
      if (closed) open.delete(String(closed.scheduledEventId));
    }
    // The existing history comes first (one page here: a release has a few hundred events), then each new batch.
    if ([...open].some((ev) => names.get(ev) === activity)) return 'scheduled';
    if (!r.nextPageToken?.length) return 'ended'; // no token: the execution has closed
    nextPageToken = r.nextPageToken;
  }
  return 'timeout';
}

/** A seeded moment inside a running step; says whether the step was still running when the moment came. */
async function fireInside(ctx: ChaosContext, id: string, activity: string, rand: () => number): Promise<Omit<KillRecord, 'point' | 'recoveryMs'>> {
  const delayMs = Math.floor(rand() * INSIDE_SPREAD_MS[activity]);
  await sleep(delayMs);
  const still = (await ctx.slipway.handle(id).describe()).raw.pendingActivities ?? [];
  return { fired: true, delayMs, landedInside: still.some((a) => a.activityType?.name === activity) };
}

/**
 * Approves the release whenever it waits for approval (the approval itself is not under test here); `before` runs
 * once first (the release's image is built by then).
 */
function autoApprove(ctx: ChaosContext, id: string, before?: (s: ReleaseStatus) => Promise<void>): { stop: () => void } {
  let stopped = false;
  let prepared = !before;
  void (async () => {
    while (!stopped) {
      const s = await statusOf(ctx.slipway, id);
      if (s && TERMINAL.includes(s.phase)) return;
      if (s?.phase === 'awaiting-approval' && !prepared) {
        await before!(s).catch((err) => ctx.log(`  preparing the approval failed: ${err instanceof Error ? err.message : String(err)}`));
        prepared = true;
      }
      if (s?.phase === 'awaiting-approval') await ctx.slipway.decide(id, 'approve', { approver: 'alice', digest: s.digest }).catch(() => undefined);
      await sleep(500);
    }
  })();
  return { stop: () => void (stopped = true) };
}

type HelmTops = Record<'qa' | 'prod', number>;

const helmOf = (ctx: ChaosContext) => new HelmDeployer(helmOptionsFromEnv({ ...process.env, KUBECONFIG: ctx.stack.kubeconfig }));
const envNamespaces = (ns: string) => [['qa', `${ns}-qa`], ['prod', ns]] as const;

/** Each environment's newest Helm revision (0: not installed), so only a release's own revisions are counted. */
async function helmTops(ctx: ChaosContext, ns: string): Promise<HelmTops> {
  const helm = helmOf(ctx);
  const tops = { qa: 0, prod: 0 };
  for (const [env, namespace] of envNamespaces(ns)) tops[env] = (await helm.history({ context: ctx.stack.contexts[env], namespace }, 'delivery').catch(() => [])).at(-1)?.revision ?? 0;
  return tops;
}

/** Helm revisions since `before`: upgrades (anything not a rollback) and completed rollbacks, per environment. */
async function helmSince(ctx: ChaosContext, ns: string, before: HelmTops) {
  const helm = helmOf(ctx);
  const out: Partial<Record<'qa' | 'prod', { upgrades: { revision: number; status: string }[]; rollbacks: { revision: number; status: string }[]; last?: string }>> = {};
  for (const [env, namespace] of envNamespaces(ns)) {
    const revs = await helm.history({ context: ctx.stack.contexts[env], namespace }, 'delivery').catch(() => []);
    const fresh = revs.filter((r) => r.revision > before[env]);
    out[env] = {
      upgrades: fresh.filter((r) => !/^rollback/i.test(r.description)),
      // A rollback its killed worker left pending is redone over it (rollback.ts): only finished ones count.
      rollbacks: fresh.filter((r) => /^rollback/i.test(r.description) && !r.status.startsWith('pending')),
      last: revs.at(-1)?.status,
    };
  }
  return out as Required<typeof out>;
}

/** Steps done more than once: completions per activity beyond the plan, Helm revisions beyond one, extra digests. */
async function duplicatesOf(ctx: ChaosContext, id: string, ns: string, final: ReleaseStatus, helmBefore: HelmTops): Promise<string[]> {
  const dups: string[] = [];
  const history = await ctx.slipway.handle(id).fetchHistory();
  const typeOf = new Map<string, string>();
  const completed: Record<string, number> = {};
  const scheduled: Record<string, number> = {};
  for (const e of history.events ?? []) {
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) {
      const name = e.activityTaskScheduledEventAttributes!.activityType!.name!;
      typeOf.set(String(e.eventId), name);
      scheduled[name] = (scheduled[name] ?? 0) + 1;
    }
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
      const name = typeOf.get(String(e.activityTaskCompletedEventAttributes!.scheduledEventId)) ?? '?';
      completed[name] = (completed[name] ?? 0) + 1;
    }
  }
  const stages = (kind: string) => final.stages.filter((s) => s.kind === kind && s.state === 'succeeded').length;
  // A canary starts and goes once, sets each of its plan's weights once and measures each interval once; its
  // promotion is a deploy stage's Helm upgrade done in the canary stage.
  const canary = final.canary ? 1 : 0;
  const expected: Record<string, number> = {
    buildImage: stages('build'),
    pushImage: stages('push'),
    scanImage: stages('scan'),
    copyImage: stages('promote'),
    packageChart: stages('chart'),
    deployChart: stages('deploy'),
    startCanary: canary,
    setCanaryWeight: canary * CANARY_WEIGHT_STEPS,
    measureCanary: final.canary?.intervals.length ?? 0,
    removeCanary: canary,
  };
  for (const [name, n] of Object.entries(expected)) {
    // A step redone after it completed is scheduled again; a killed attempt is only retried (same schedule).
    if ((scheduled[name] ?? 0) > n && (completed[name] ?? 0) > n) dups.push(`${name} completed ${completed[name]} times, scheduled ${scheduled[name]}, for ${n} stage(s)`);
  }
  // Only this release's revisions: a canary release's namespace holds its baseline release's revision too.
  const since = await helmSince(ctx, ns, helmBefore);
  for (const [env, h] of Object.entries(since)) {
    // Rollbacks (compensation of a failed release) are revisions too, but not repeats of the upgrade.
    if (h.upgrades.length > 1) dups.push(`helm ${env}: ${h.upgrades.length} upgrade revisions (${h.upgrades.map((r) => `${r.revision}:${r.status}`).join(', ')})`);
    if (h.rollbacks.length > 1) dups.push(`helm ${env}: ${h.rollbacks.length} rollback revisions (${h.rollbacks.map((r) => `${r.revision}:${r.status}`).join(', ')})`);
    if (final.phase === 'succeeded' && h.last !== 'deployed') dups.push(`helm ${env}: last revision is ${h.last ?? 'missing'}`);
  }
  if (final.phase === 'succeeded' && final.digest) {
    const reg = new OciRegistryClient({ host: ctx.stack.registry.url, name: 'dev' }, new EnvCredentialStore(workerEnv(ctx.stack), '/nonexistent'));
    for (const repo of ['delivery', 'prod/delivery']) {
      const m = await reg.getManifest(repo, final.version);
      if (m.digest !== final.digest) dups.push(`${repo}:${final.version} holds ${m.digest}, the release recorded ${final.digest}`);
    }
  }
  return dups;
}

export interface ChaosReleaseOptions {
  pointTimeoutMs?: number;
  releaseTimeoutMs?: number;
  /** Release into this namespace (one an earlier release left) instead of a new one. */
  ns?: string;
  /** Production runs the release as a canary first, measured by this Prometheus. */
  canaryPrometheus?: string;
  /** Runs once when the release first waits for approval, before it is approved. */
  beforeApprove?: (s: ReleaseStatus) => Promise<void>;
  /** What else is wrong once the release ended: `prodUpgrades`, production's Helm upgrades by this release. */
  verify?: (final: ReleaseStatus, prodUpgrades: number) => Promise<string[]>;
}

/** One release under chaos: the worker is killed at each of `points` in turn and restarted each time. */
export async function chaosRelease(ctx: ChaosContext, points: KillPoint[], rand: () => number, opts: ChaosReleaseOptions = {}): Promise<ReleaseReport> {
  // Eight hex digits: the test setup deletes earlier runs' `<prefix>-<6 hex>` namespaces, which took a running
  // chaos run's baselines away whenever a test suite started meanwhile; chaos removes its own (removeNamespaces).
  const ns = opts.ns ?? `chaos-${randomBytes(4).toString('hex')}`;
  const version = `v1.0.0-chaos${randomBytes(4).toString('hex')}`;
  // The workers read the plan from their own slipway.yaml; paths in it are relative to their directory, which
  // holds a copy of the sample service (a link would resolve outside the workspace, which the builder refuses).
  const workspace = join(ctx.workDir, `${ns}-${version}`);
  mkdirSync(workspace, { recursive: true });
  cpSync(join(ROOT, 'services', 'delivery'), join(workspace, 'services', 'delivery'), { recursive: true, dereference: true });
  const configText = chaosConfigText(ctx.stack, ns, opts.canaryPrometheus);
  parseConfig(configText);
  writeFileSync(join(workspace, 'slipway.yaml'), configText);
  const request = { service: 'delivery', version, requester: 'ci-bot' };
  const env = workerEnv(ctx.stack);
  const logFile = join(ctx.workDir, `${ns}-${version}-workers.log`);
  const helmBefore = await helmTops(ctx, ns);
  const workers: WorkerProcess[] = [];
  const spawnWorker = () => {
    const w = new WorkerProcess(env, logFile, workspace);
    workers.push(w);
    return w;
  };
  let worker = spawnWorker();
  const started = Date.now();
  const { workflowId } = await ctx.slipway.start(request);
  const approver = autoApprove(ctx, workflowId, opts.beforeApprove);
  const records: KillRecord[] = [];
  const orphans: Orphan[] = [];
  try {
    for (const p of points) {
      const r = await reach(ctx, workflowId, p, rand, opts.pointTimeoutMs ?? 300_000);
      const rec: KillRecord = { point: pointName(p), ...r };
      records.push(rec);
      if (!r.fired) {
        ctx.log(`  ${rec.point}: not reached (the step ended between two polls, or the release ended)`);
        continue;
      }
      orphans.push(...(await worker.kill(rec.point)));
      ctx.log(`  kill -9 ${rec.point}${r.delayMs !== undefined ? ` +${r.delayMs} ms (${r.landedInside ? 'inside' : 'step had just ended'})` : ''}`);
      worker = spawnWorker();
    }
    const deadline = Date.now() + (opts.releaseTimeoutMs ?? 600_000);
    let final: ReleaseStatus | undefined;
    while (Date.now() < deadline) {
      final = await statusOf(ctx.slipway, workflowId);
      if (final && TERMINAL.includes(final.phase)) break;
      await sleep(500);
    }
    if (!final || !TERMINAL.includes(final.phase)) throw new Error(`release ${workflowId} did not end within the timeout (phase ${final?.phase})`);
    const d = await ctx.slipway.handle(workflowId).describe();
    const completedCleanly =
      (final.phase === 'succeeded' && !final.error) || (final.phase === 'failed' && !!final.error && d.status.name === 'FAILED');
    const duplicates = await duplicatesOf(ctx, workflowId, ns, final, helmBefore);
    const problems = opts.verify ? await opts.verify(final, (await helmSince(ctx, ns, helmBefore)).prod.upgrades.length) : [];
    return {
      workflowId,
      ns,
      version,
      digest: final.digest,
      points: records,
      kills: records.filter((r) => r.fired).length,
      phase: final.phase,
      error: final.error,
      completedCleanly,
      durationMs: Date.now() - started,
      duplicates,
      orphans,
      problems,
    };
  } finally {
    approver.stop();
    for (const w of workers) {
      await w.kill('end of release').catch(() => []);
      w.reap();
    }
  }
}

/**
 * A canary release under chaos into `baseline`'s namespace (a release that succeeded there is the stable one): the
 * baseline track runs the stable release's image, the canary track the new one's (failing: with a 30 % error rate),
 * and the release must end as those metrics say, with the cluster consistent with that outcome.
 */
export async function chaosCanaryRelease(
  ctx: ChaosContext,
  tracks: CanaryTracks,
  baseline: ReleaseReport,
  metrics: CanaryMetrics,
  points: KillPoint[],
  rand: () => number,
): Promise<ReleaseReport> {
  if (baseline.phase !== 'succeeded' || !baseline.digest) throw new Error(`${baseline.workflowId} (${baseline.phase}) cannot be a canary's baseline`);
  const prod = { kubeconfig: ctx.stack.kubeconfig, context: ctx.stack.contexts.prod, namespace: baseline.ns };
  const replicas = await stableReplicas(prod.kubeconfig, prod.context, prod.namespace);
  if (replicas === undefined) throw new Error(`no stable Deployment in ${baseline.ns} to run a canary beside`);
  await tracks.run('baseline', localImage(ctx.stack.registry.url, baseline.version));
  return chaosRelease(ctx, points, rand, {
    ns: baseline.ns,
    canaryPrometheus: tracks.url,
    beforeApprove: (s) => tracks.run('canary', localImage(ctx.stack.registry.url, s.version), metrics),
    verify: (final, prodUpgrades) => canaryOutcomeProblems(final, { ...prod, metrics, baselineDigest: baseline.digest!, stableReplicas: replicas, prodUpgrades }),
  });
}

/** Deletes the releases' namespaces (QA's and production's) without waiting: kwok's nodes fill up otherwise. */
export async function removeNamespaces(ctx: ChaosContext, reports: Pick<ReleaseReport, 'ns'>[]): Promise<void> {
  const cluster = KubeCluster.forKubeconfig(ctx.stack.kubeconfig);
  for (const ns of new Set(reports.map((r) => r.ns))) {
    for (const [env, namespace] of envNamespaces(ns)) await cluster.api(ctx.stack.contexts[env], k8s.CoreV1Api).deleteNamespace({ name: namespace }).catch(() => undefined);
  }
}

export function summarize(seed: number, reports: ReleaseReport[]): string {
  const kills = reports.reduce((n, r) => n + r.kills, 0);
  const lines = [
    `chaos seed ${seed} (SLIPWAY_CHAOS_SEED=${seed} reproduces the kill points and delays)`,
    `releases: ${reports.length}; kills: ${kills}; completed: ${reports.filter((r) => r.phase === 'succeeded').length}; clean failures: ${reports.filter((r) => r.phase !== 'succeeded' && r.completedCleanly).length}; unclean: ${reports.filter((r) => !r.completedCleanly).length}`,
    `duplicates found: ${reports.reduce((n, r) => n + r.duplicates.length, 0)}; orphans found: ${reports.reduce((n, r) => n + r.orphans.length, 0)}; outcome problems: ${reports.reduce((n, r) => n + r.problems.length, 0)}; points not reached: ${reports.reduce((n, r) => n + r.points.filter((p) => !p.fired).length, 0)}`,
  ];
  for (const r of reports) {
    lines.push(`  ${r.workflowId}: ${r.phase}${r.error ? ` (${r.error})` : ''} in ${(r.durationMs / 1000).toFixed(1)} s, ${r.kills} kill(s): ${r.points.map((p) => `${p.point}${p.fired ? '' : ' [not reached]'}`).join('; ')}`);
    for (const dup of r.duplicates) lines.push(`    DUPLICATE ${dup}`);
    for (const p of r.problems) lines.push(`    PROBLEM ${p}`);
    for (const o of r.orphans) lines.push(`    ORPHAN ${o.comm} (pid ${o.pid}) after kill ${o.point}${o.ownGroup ? ', still in the killed group' : ', in a process group of its own'}`);
  }
  return lines.join('\n');
}

/** Connects to the chaos namespace (registering it first). */
export async function chaosContext(stack: ChaosStack, log: (line: string) => void): Promise<ChaosContext & { close: () => Promise<void> }> {
  if (!existsSync(join(ROOT, 'dist', 'client', 'cli.js'))) throw new Error('dist/client/cli.js is missing: run `npx tsc` first');
  await ensureChaosNamespace(stack.temporal);
  const connection = await Connection.connect({ address: stack.temporal });
  // Starts and approvals are signed with the local stack's key, which the chaos configuration trusts.
  const slipway = new SlipwayClient(new Client({ connection, namespace: CHAOS_NAMESPACE }), ORCHESTRATOR_QUEUE, localTokens());
  const workDir = join(tmpdir(), `slipway-chaos-${Date.now().toString(36)}`);
  mkdirSync(workDir, { recursive: true });
  return { stack, slipway, workDir, log, client: slipway.client, close: () => connection.close() };
}

/** `npm run chaos`: the whole matrix on the local stack (brought up as `slipway stack up` does). */
async function main(): Promise<void> {
  const { ensureDocker, ensureRegistry, ensureTemporal } = await import('../client/stack');
  const { ensureClusters } = await import('../client/stack/kubernetes');
  const { ensureBaseImage } = await import('../client/stack/base-image');
  const { dockerFromEnv } = await import('../workers/builder');
  process.env.PATH = `${join(homedir(), '.cache', 'slipway', 'bin')}:${process.env.PATH}`;
  const [t, docker, registry, clusters] = await Promise.all([ensureTemporal(), ensureDocker(), ensureRegistry('registry', 5000), ensureClusters()]);
  await ensureBaseImage(dockerFromEnv({ DOCKER_HOST: docker.host }));
  // The fixture vulnerability database the tests use (no real one can be downloaded here).
  const trivyCache = join(ROOT, '.slipway', 'trivy-cache');
  execFileSync(join(homedir(), '.cache', 'slipway', 'bin', 'trivy-fixture-db'), ['-advisories', join(ROOT, 'test', 'fixtures', 'trivy', 'advisories.json'), '-cache-dir', trivyCache], { stdio: 'ignore' });
  const stack: ChaosStack = { temporal: t.address, docker: docker.host, registry, kubeconfig: clusters.kubeconfig, contexts: clusters.contexts, trivyCache };
  const seed = chaosSeed();
  const releases = Number(process.env.SLIPWAY_CHAOS_RELEASES ?? 4);
  if (!Number.isInteger(releases) || releases < 1) throw new Error(`SLIPWAY_CHAOS_RELEASES must be a positive integer, not "${process.env.SLIPWAY_CHAOS_RELEASES}"`);
  // SLIPWAY_CHAOS_CANARY=0 leaves the canary kill points out (they need a Prometheus).
  const canary = process.env.SLIPWAY_CHAOS_CANARY !== '0';
  const rounds = canary ? canaryRounds() : [];
  const print = (l: string) => process.stdout.write(`${l}\n`);
  print(`chaos seed ${seed}; ${KILL_POINTS.length} kill points over ${releases} releases${canary ? `, ${CANARY_KILL_POINTS.length} canary kill points over ${rounds.length} more` : ''}`);
  const ctx = await chaosContext(stack, print);
  const rand = seededRandom(seed);
  const reports: ReleaseReport[] = [];
  let tracks: CanaryTracks | undefined;
  try {
    for (const [i, points] of matrixRounds(releases).entries()) {
      print(`release ${i + 1}/${releases}: ${points.map(pointName).join(', ')}`);
      reports.push(await chaosRelease(ctx, points, rand));
    }
    if (rounds.length) tracks = await CanaryTracks.start(stack.docker, ctx.workDir);
    // Each canary runs beside a release of the matrix that succeeded (one without kills when too few did).
    const baselines = reports.filter((r) => r.phase === 'succeeded' && r.digest);
    for (const [i, round] of rounds.entries()) {
      let base = baselines[i];
      if (!base) {
        print(`canary baseline ${i + 1}: a release without kills`);
        reports.push((base = await chaosRelease(ctx, [], rand)));
      }
      print(`canary release ${i + 1}/${rounds.length} (${round.metrics}, beside ${base.version}): ${round.points.map(pointName).join(', ')}`);
      reports.push(await chaosCanaryRelease(ctx, tracks!, base, round.metrics, round.points, rand));
    }
  } finally {
    await tracks?.stop();
    await removeNamespaces(ctx, reports);
    await ctx.close();
  }
  print(summarize(seed, reports));
  const bad = reports.filter((r) => !r.completedCleanly || r.duplicates.length || r.orphans.length || r.problems.length);
  if (bad.length) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
