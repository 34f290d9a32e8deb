/** What the deploy activities share: their dependencies, Helm's release marks, waits on history and rollouts. */
import { Context } from '@temporalio/activity';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeTargetPlan } from '../../model/types';
import type { Cluster, Deployer, HelmRevision, Progress } from '../ports';
import type { CredentialStore } from '../registry/credentials';

export interface DeployDeps {
  deployer: Deployer;
  cluster: Cluster;
  credentials: CredentialStore;
  /** Whether a lock holder (a release's workflow id) is still running; a finished holder's lock is taken over. */
  holderActive?: (holder: string) => Promise<boolean>;
  /** How often waits re-check (tests shorten it). */
  pollMs?: number;
  /**
   * How long a retried deploy waits for a pending revision its own run started before it takes that revision for
   * abandoned (its Helm died with the worker) and recovers it. Defaults to the activity's heartbeat timeout
   * (15–60 s): Temporal retried this attempt only after its predecessor stopped heartbeating for that long.
   */
  abandonedAfterMs?: number;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const where = (t: KubeTargetPlan) => `${t.context}/${t.namespace}`;
export const pollMs = (deps: DeployDeps): number => deps.pollMs ?? 2_000;

/** Slipway's mark in a revision's values: which release, run and environment deployed it. */
export type Mark = { release?: string; run?: string; environment?: string };
export const markOf = (values: Record<string, unknown>): Mark => (values.slipway ?? {}) as Mark;

export function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-deploy-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/** The revision history once its latest revision is no longer pending (an upgrade started by a worker that died). */
export async function settled(deps: DeployDeps, target: KubeTargetPlan, release: string, timeoutMs: number, progress: Progress): Promise<HelmRevision[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const history = await deps.deployer.history(target, release);
    const latest = history.at(-1);
    if (!latest?.status.startsWith('pending') || Date.now() > deadline) return history;
    progress({ waiting: `revision ${latest.revision} is ${latest.status}` });
    await sleep(pollMs(deps));
  }
}

/** How long a pending revision this run started may stay pending before it is taken for abandoned. */
export function abandonedAfter(deps: DeployDeps): number {
  if (deps.abandonedAfterMs !== undefined) return deps.abandonedAfterMs;
  let hb: number | undefined;
  try {
    hb = Context.current().info.heartbeatTimeoutMs;
  } catch {
    /* outside an activity */
  }
  return Math.min(60_000, Math.max(15_000, hb ?? 30_000));
}

/** The Deployment the chart manages for this release (labelled app.kubernetes.io/instance=<release>). */
export async function workloadOf(cluster: Cluster, target: KubeTargetPlan, release: string): Promise<string> {
  const w = await cluster.workloads(target, `app.kubernetes.io/instance=${release}`);
  return w[0]?.name ?? release;
}
