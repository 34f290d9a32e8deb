/**
 * Deploy activities: package the chart, capture what is deployed, `helm upgrade --install --wait` by digest, smoke
 * test, roll back, and the per-environment lock. Deploys are idempotent across worker deaths: the release id is
 * written into the Helm values, so a retried attempt finds the revision its predecessor started and waits for it
 * instead of upgrading a second time.
 */
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, sep } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ErrorTypes } from '../model/errors';
import {
  deployChartInputSchema,
  deployLockInputSchema,
  inspectDeployInputSchema,
  packageChartInputSchema,
  rollbackInputSchema,
  smokeTestInputSchema,
  type DeployChartResult,
  type DeployedState,
  type KubeTargetPlan,
  type RollbackResult,
  type SmokeTestResult,
} from '../model/types';
import type { SlipwayActivities } from './contract';
import { HelmError } from './helm/helm';
import { DEFAULT_IMAGE_VALUES, parseImageRef, pinningProblems, renderedContainers, withImageValues, type ReleaseImage } from './helm/images';
import { check, heartbeat, resolveInside, signal } from './common';
import { KubeError } from './kubernetes/cluster';
import type { Cluster, Deployer, HelmRevision, Progress, RolloutState } from './ports';
import { pullChart, pushChart } from './registry/artifact';
import type { CredentialStore } from './registry/credentials';
import { OciRegistryClient } from './registry/oci-client';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const where = (t: KubeTargetPlan) => `${t.context}/${t.namespace}`;
const leaseName = (service: string) => `slipway-${service}`;

/** Helm and Kubernetes errors as Temporal failures: configuration and chart errors are final, outages are retried. */
function failure(err: unknown): unknown {
  if (err instanceof KubeError) {
    if (err.kind === 'unknown-context' || err.kind === 'forbidden') return ApplicationFailure.nonRetryable(err.message, ErrorTypes.ClusterConfig);
    return ApplicationFailure.retryable(err.message, 'ClusterUnreachableError');
  }
  if (err instanceof HelmError) {
    if (err.kind === 'cancelled') return new CancelledFailure(err.message);
    if (err.kind === 'invalid') return ApplicationFailure.nonRetryable(err.message, ErrorTypes.DeployFailed);
    if (err.kind === 'unreachable' && /context .* does not exist/i.test(err.message)) return ApplicationFailure.nonRetryable(err.message, ErrorTypes.ClusterConfig);
    return ApplicationFailure.retryable(err.message, 'HelmError');
  }
  return err;
}

export async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw failure(err);
  }
}

function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-deploy-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

/**
 * The symlinks under a chart directory that resolve outside it (or nowhere), as "link -> target" lines. Helm
 * follows symlinks when it packages a chart (with only a warning), so a link to /etc/passwd or ../secrets would
 * ship that file inside the chart to every cluster. Links that stay inside the chart are only another name for
 * chart content and are allowed; directories reached through a link are not walked twice (their real location is).
 */
export function escapingSymlinks(chartDir: string): string[] {
  const root = realpathSync(chartDir);
  const bad: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, e.name);
      if (e.isSymbolicLink()) {
        const shown = `${relative(root, full)} -> ${readlinkSync(full)}`;
        let real: string;
        try {
          real = realpathSync(full);
        } catch {
          bad.push(`${shown} (points to nothing)`);
          continue;
        }
        const r = relative(root, real);
        if (r === '..' || r.startsWith(`..${sep}`) || isAbsolute(r)) bad.push(`${shown} (resolves to ${real}, outside the chart)`);
      } else if (e.isDirectory()) {
        walk(full);
      }
    }
  };
  walk(root);
  return bad;
}

export interface ChartDeps {
  deployer: Deployer;
  credentials: CredentialStore;
  workspace: string;
}

/** Runs where the repository is checked out (the builders). */
export function createChartActivities(deps: ChartDeps): Pick<SlipwayActivities, 'packageChart'> {
  return {
    async packageChart(raw) {
      const input = check(packageChartInputSchema, raw, 'packageChart');
      const dir = resolveInside(deps.workspace, input.chartPath, 'chart');
      if (!statSync(dir).isDirectory()) throw ApplicationFailure.nonRetryable(`chart "${input.chartPath}" is not a directory`, ErrorTypes.InvalidInput);
      const meta = parseYaml(readFileSync(resolveInside(dir, 'Chart.yaml', 'Chart.yaml'), 'utf8')) as { name?: string };
      if (!meta?.name) throw ApplicationFailure.nonRetryable(`chart "${input.chartPath}": Chart.yaml has no name`, ErrorTypes.InvalidInput);
      const links = escapingSymlinks(dir);
      if (links.length) {
        throw ApplicationFailure.nonRetryable(`chart "${input.chartPath}" has symlinks that leave the chart directory (Helm would package their targets):\n- ${links.join('\n- ')}`, ErrorTypes.InvalidInput);
      }
      return withTempDir(async (out) => {
        // Chart version = app version = the release version: the chart in the registry is named like the image.
        const file = await guarded(() => deps.deployer.package(dir, input.version, out));
        const client = new OciRegistryClient({ host: input.registry.host, name: input.registry.name, insecure: input.registry.insecure }, deps.credentials);
        const pushed = await pushChart(client, input.repository, input.version, { tgz: readFileSync(file), name: meta.name!, version: input.version, appVersion: input.version });
        return {
          reference: `${input.registry.host}/${input.repository}@${pushed.digest}`,
          repository: input.repository,
          digest: pushed.digest,
          chart: meta.name!,
          version: input.version,
          size: pushed.size,
        };
      });
    },
  };
}

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

type Mark = { release?: string; run?: string; environment?: string };
const markOf = (values: Record<string, unknown>): Mark => (values.slipway ?? {}) as Mark;

export function createDeployActivities(deps: DeployDeps): Pick<SlipwayActivities, 'inspectDeploy' | 'deployChart' | 'rollbackDeploy' | 'smokeTest' | 'acquireDeployLock' | 'releaseDeployLock'> {
  const poll = deps.pollMs ?? 2_000;
  const { deployer, cluster } = deps;

  /** The revision history once its latest revision is no longer pending (an upgrade started by a worker that died). */
  async function settled(target: KubeTargetPlan, release: string, timeoutMs: number, progress: Progress): Promise<HelmRevision[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const history = await deployer.history(target, release);
      const latest = history.at(-1);
      if (!latest?.status.startsWith('pending') || Date.now() > deadline) return history;
      progress({ waiting: `revision ${latest.revision} is ${latest.status}` });
      await sleep(poll);
    }
  }

  const abandonedAfter = (): number => {
    if (deps.abandonedAfterMs !== undefined) return deps.abandonedAfterMs;
    let hb: number | undefined;
    try {
      hb = Context.current().info.heartbeatTimeoutMs;
    } catch {
      /* outside an activity */
    }
    return Math.min(60_000, Math.max(15_000, hb ?? 30_000));
  };

  /**
   * A revision this run's earlier attempt left pending: its worker died with Helm inside `upgrade --wait`, and the
   * tool died with it (exec.ts asks the kernel to kill tools with their worker), so nobody will ever complete it and
   * Helm refuses every further upgrade. After a grace period (in case that Helm still runs somewhere) the revision
   * is undone the way an operator would: an install is uninstalled, an upgrade rolled back to the last deployed
   * revision. The deploy then runs once more from a clean state; what the dead attempt applied is reconciled by it.
   */
  async function recoverAbandoned(target: KubeTargetPlan, release: string, input: { releaseId: string; runId: string; environment: string; timeoutMs: number }) {
    let history = await deployer.history(target, release);
    let latest = history.at(-1);
    if (!latest?.status.startsWith('pending')) return undefined;
    const mark = markOf(await deployer.values(target, release, latest.revision));
    if (mark.release !== input.releaseId || mark.run !== input.runId || mark.environment !== input.environment) return undefined;
    const deadline = Date.now() + abandonedAfter();
    while (latest?.status.startsWith('pending') && Date.now() < deadline) {
      heartbeat({ waiting: `revision ${latest.revision} is ${latest.status} (started by an earlier attempt)` });
      await sleep(Math.min(poll, 1_000));
      history = await deployer.history(target, release);
      latest = history.at(-1);
    }
    if (!latest?.status.startsWith('pending')) return undefined; // its Helm was alive after all: resume as before
    const previous = [...history].reverse().find((h) => h.revision < latest!.revision && (h.status === 'deployed' || h.status === 'superseded'));
    heartbeat({ recovering: release, revision: latest.revision, status: latest.status });
    if (previous) {
      await deployer.rollback(target, release, previous.revision, input.timeoutMs, heartbeat);
      return { revision: latest.revision, status: latest.status, action: 'rolled-back' as const, to: previous.revision };
    }
    await deployer.uninstall(target, release, input.timeoutMs, heartbeat);
    return { revision: latest.revision, status: latest.status, action: 'uninstalled' as const };
  }

  /** The Deployment the chart manages for this release (labelled app.kubernetes.io/instance=<release>). */
  async function workloadOf(target: KubeTargetPlan, release: string): Promise<string> {
    const w = await cluster.workloads(target, `app.kubernetes.io/instance=${release}`);
    return w[0]?.name ?? release;
  }

  /** Polls the rollout (what `kubectl rollout status` does) until it completes, fails, or the deadline passes. */
  async function rolledOut(target: KubeTargetPlan, release: string, deadline: number): Promise<RolloutState> {
    const name = await workloadOf(target, release);
    for (;;) {
      const state = await cluster.rollout(target, name);
      if (state.done || state.failed || Date.now() > deadline) return state;
      heartbeat({ rollout: name, available: state.available, replicas: state.replicas });
      await sleep(Math.min(poll, 1_000));
    }
  }

  /**
   * After the rollout: the pods that run the service's repository run the digest. The node's imageID (what the
   * runtime actually pulled, `repo@sha256:…`) decides where it reports one; kwok's simulated nodes report none, and
   * a runtime may report only the image config ID (`sha256:…`), so then the pod spec's image is what is checked —
   * which still catches a mutating webhook or a controller that rewrote the image to a tag.
   */
  async function runningPinned(target: KubeTargetPlan, release: string, wanted: ReleaseImage): Promise<NonNullable<DeployChartResult['pinned']>> {
    const workloads = (await cluster.workloads(target, `app.kubernetes.io/instance=${release}`)).map((w) => w.name);
    const listed = (await Promise.all(workloads.map((w) => cluster.podImages(target, w)))).flat();
    // Two Deployments whose selectors overlap list the same pods.
    const all = [...new Map(listed.map((c) => [`${c.pod}/${c.container}`, c])).values()];
    const containers = all.filter((c) => parseImageRef(c.image).name === wanted.repository);
    // Pods that run, but none of them the release's image: the cluster rendered something the check did not see.
    if (all.length && !containers.length) {
      const seen = [...new Set(all.map((c) => `pod ${c.pod} container "${c.container}" runs "${c.image}"`))].slice(0, 5);
      throw ApplicationFailure.nonRetryable(`${release} in ${where(target)} runs no container of ${wanted.repository}:\n- ${seen.join('\n- ')}`, ErrorTypes.DeployFailed);
    }
    const wrong: string[] = [];
    let byImageID = containers.length > 0;
    for (const c of containers) {
      const reported = c.imageID.includes('@') ? c.imageID.slice(c.imageID.lastIndexOf('@') + 1) : undefined;
      if (!reported) byImageID = false;
      const digest = reported ?? parseImageRef(c.image).digest;
      if (digest !== wanted.digest) wrong.push(`pod ${c.pod} container "${c.container}" runs ${reported ? `imageID ${c.imageID}` : `"${c.image}"`}`);
    }
    if (wrong.length) {
      throw ApplicationFailure.nonRetryable(`${release} in ${where(target)} does not run ${wanted.repository}@${wanted.digest}:\n- ${wrong.join('\n- ')}`, ErrorTypes.DeployFailed);
    }
    return { pods: new Set(containers.map((c) => c.pod)).size, containers: containers.length, by: byImageID ? 'imageID' : 'spec' };
  }

  async function rolloutFailure(target: KubeTargetPlan, release: string, cause: string): Promise<ApplicationFailure> {
    const state = await cluster.rollout(target, await workloadOf(target, release)).catch(() => undefined);
    const reasons = [state?.failed, ...(state?.warnings ?? [])].filter(Boolean);
    const counts = state ? ` (${state.available}/${state.replicas} available, ${state.updated} updated)` : '';
    return ApplicationFailure.create({
      message: `rollout of ${release} in ${where(target)} failed${counts}: ${cause}${reasons.length ? `\nreasons:\n- ${reasons.join('\n- ')}` : ''}`,
      type: ErrorTypes.RolloutFailed,
      nonRetryable: true,
      details: [{ rollout: state }],
    });
  }

  return {
    async inspectDeploy(raw): Promise<DeployedState> {
      const input = check(inspectDeployInputSchema, raw, 'inspectDeploy');
      return guarded(async () => {
        await cluster.ping(input.target);
        const history = await deployer.history(input.target, input.service);
        const current = [...history].reverse().find((h) => h.status === 'deployed');
        if (!current) return { revision: 0 };
        const mark = markOf(await deployer.values(input.target, input.service, current.revision));
        return { revision: current.revision, status: current.status, appVersion: current.appVersion, ...(mark.release ? { release: mark.release } : {}) };
      });
    },

    async deployChart(raw): Promise<DeployChartResult> {
      const input = check(deployChartInputSchema, raw, 'deployChart');
      const started = Date.now();
      const { target, service: release } = input;
      const image = `${input.image.repository}@${input.image.digest}`;
      const wanted: ReleaseImage = { ...input.image, version: input.version };
      const layout = input.imageValues ?? DEFAULT_IMAGE_VALUES;
      return guarded(async () => {
        const recovered = await recoverAbandoned(target, release, input);
        const latest = (await settled(target, release, input.timeoutMs, heartbeat)).at(-1);
        let revision: number;
        let resumed = false;
        const mine = latest ? markOf(await deployer.values(target, release, latest.revision)) : {};
        if (latest && mine.release === input.releaseId && mine.run === input.runId && mine.environment === input.environment) {
          // A previous attempt started this upgrade (and its Helm process finished it, or failed it): no second upgrade.
          resumed = true;
          revision = latest.revision;
          if (latest.status !== 'deployed') throw await rolloutFailure(target, release, `revision ${revision} is ${latest.status}: ${latest.description}`);
        } else {
          if (latest?.status.startsWith('pending')) {
            throw ApplicationFailure.retryable(`${release} in ${where(target)} has an operation in progress (revision ${latest.revision} ${latest.status})`, 'HelmBusyError');
          }
          revision = await withTempDir(async (dir) => {
            const client = new OciRegistryClient({ host: input.chart.registry.host, name: input.chart.registry.name, insecure: input.chart.registry.insecure }, deps.credentials);
            const chartFile = join(dir, 'chart.tgz');
            writeFileSync(chartFile, await pullChart(client, input.chart.repository, input.chart.digest));
            // The image and slipway's marks go last: a values override cannot replace them (config refuses it anyway).
            const values = withImageValues(
              {
                ...input.values,
                slipway: { release: input.releaseId, run: input.runId, environment: input.environment, owner: input.owner, version: input.version, changeCause: input.changeCause },
              },
              layout,
              wanted,
            );
            const valuesFile = join(dir, 'values.json');
            writeFileSync(valuesFile, JSON.stringify(values));
            // Render first: a chart that would run a tag (or another image) is refused before the cluster is touched.
            heartbeat({ rendering: release, target: where(target) });
            const problems = pinningProblems(renderedContainers(await deployer.template({ ...target, release, chartFile, valuesFile, isUpgrade: Boolean(latest) })), wanted, layout);
            if (problems.length) {
              throw ApplicationFailure.nonRetryable(
                `chart ${input.chart.repository}@${input.chart.digest} would not run ${image} in ${where(target)}:\n- ${problems.join('\n- ')}`,
                ErrorTypes.DeployFailed,
              );
            }
            heartbeat({ upgrading: release, target: where(target), image });
            try {
              const r = await deployer.upgrade(
                { ...target, release, chartFile, valuesFile, timeoutMs: input.timeoutMs, description: `slipway ${input.releaseId}: ${input.version} to ${input.environment}` },
                heartbeat,
                signal(),
              );
              return r.revision;
            } catch (err) {
              if (err instanceof HelmError && (err.kind === 'timeout' || err.kind === 'failed')) throw await rolloutFailure(target, release, err.message);
              throw err;
            }
          });
        }
        // Helm's --wait counts ready pods; a rollout is complete when they are available (minReadySeconds) too.
        const state = await rolledOut(target, release, started + input.timeoutMs);
        if (!state.done) {
          throw await rolloutFailure(target, release, state.failed ?? `revision ${revision} is deployed but its rollout did not complete within ${input.timeoutMs} ms`);
        }
        const pinned = await runningPinned(target, release, wanted);
        return { release, revision, resumed, ...(recovered ? { recovered } : {}), image, replicas: state.replicas, available: state.available, durationMs: Date.now() - started, pinned };
      });
    },

    async rollbackDeploy(raw): Promise<RollbackResult> {
      const input = check(rollbackInputSchema, raw, 'rollbackDeploy');
      const { target, service: release } = input;
      return guarded(async () => {
        const ours = (m: Mark) => m.release === input.releaseId && m.run === input.runId;
        const isOwnRollback = async (h: HelmRevision[], r: HelmRevision) => {
          const before = h.find((x) => x.revision === r.revision - 1);
          return r.description === `Rollback to ${input.toRevision}` && before !== undefined && ours(markOf(await deployer.values(target, release, before.revision)));
        };
        // A rollback this run's earlier attempt started and whose Helm died with its worker stays pending for ever:
        // wait only the grace period for it, then roll back again (Helm allows a rollback over a pending revision).
        const first = await deployer.history(target, release);
        const own = first.at(-1)?.status === 'pending-rollback' && (await isOwnRollback(first, first.at(-1)!));
        const history = await settled(target, release, own ? abandonedAfter() : input.timeoutMs, heartbeat);
        const latest = history.at(-1);
        if (!latest) return { action: 'nothing-to-do', toRevision: input.toRevision, note: `${release} is not installed in ${where(target)}` };
        const mark = markOf(await deployer.values(target, release, latest.revision));
        if (latest.status === 'pending-rollback' && (await isOwnRollback(history, latest))) {
          await deployer.rollback(target, release, input.toRevision, input.timeoutMs, heartbeat);
          const now = (await deployer.history(target, release)).at(-1);
          return { action: 'rolled-back', toRevision: input.toRevision, revision: now?.revision, note: `${input.reason} — rolled back to revision ${input.toRevision} (again: revision ${latest.revision} was left pending)` };
        }
        if (!ours(mark)) {
          // A retry after a rollback that already happened finds the rollback revision on top of this release's.
          const done = !latest.status.startsWith('pending') && (await isOwnRollback(history, latest));
          if (done) return { action: 'rolled-back', toRevision: input.toRevision, revision: latest.revision, note: `revision ${latest.revision} restored revision ${input.toRevision}` };
          return {
            action: 'skipped',
            toRevision: input.toRevision,
            note: `revision ${latest.revision} in ${where(target)} was deployed by ${mark.release ?? 'someone else'}${mark.release === input.releaseId ? ` (run ${mark.run})` : ''}, not by this release: left alone`,
          };
        }
        if (input.toRevision === 0) {
          await deployer.uninstall(target, release, input.timeoutMs, heartbeat);
          return { action: 'uninstalled', toRevision: 0, note: `nothing was deployed before this release: ${release} uninstalled from ${where(target)}` };
        }
        await deployer.rollback(target, release, input.toRevision, input.timeoutMs, heartbeat);
        const now = (await deployer.history(target, release)).at(-1);
        return { action: 'rolled-back', toRevision: input.toRevision, revision: now?.revision, note: `${input.reason} — rolled back to revision ${input.toRevision}` };
      });
    },

    async smokeTest(raw): Promise<SmokeTestResult> {
      const input = check(smokeTestInputSchema, raw, 'smokeTest');
      const started = Date.now();
      const c = input.check;
      const fail = (detail: string) => ApplicationFailure.nonRetryable(`smoke test "${c.type}" failed for ${input.service} in ${input.environment}: ${detail}`, ErrorTypes.SmokeTestFailed);
      return guarded(async () => {
        if (c.type === 'rollout') {
          const state = await cluster.rollout(input.target, await workloadOf(input.target, input.service));
          if (!state.exists) throw fail(`no Deployment for ${input.service} in ${where(input.target)}`);
          if (!state.done) throw fail(`${state.available}/${state.replicas} available${state.warnings.length ? `; ${state.warnings.join('; ')}` : ''}`);
          return { check: c.type, detail: `${state.available}/${state.replicas} replicas available, all updated`, durationMs: Date.now() - started };
        }
        if (c.type === 'helm-test') {
          let passed: string[];
          try {
            ({ passed } = await deployer.test(input.target, input.service, c.timeoutMs, heartbeat));
          } catch (err) {
            if (err instanceof HelmError && err.kind !== 'unreachable') throw fail(err.message);
            throw err;
          }
          // A chart without test hooks would pass vacuously: that is not a smoke test.
          if (!passed.length) throw fail('the chart has no Helm test hooks (add one, or remove helm-test from the smoke checks)');
          return { check: c.type, detail: `Helm test hooks succeeded: ${passed.join(', ')}`, durationMs: Date.now() - started };
        }
        // http: retried until the deadline, since a just-rolled-out service may take a moment behind its Service.
        const deadline = Date.now() + c.timeoutMs;
        let last = '';
        while (Date.now() < deadline) {
          try {
            const res = await fetch(c.url, { signal: AbortSignal.timeout(Math.min(10_000, c.timeoutMs)), redirect: 'manual' });
            await res.arrayBuffer().catch(() => undefined);
            if (res.status === c.expectStatus) return { check: c.type, detail: `GET ${c.url} answered ${res.status}`, durationMs: Date.now() - started };
            last = `answered ${res.status}, expected ${c.expectStatus}`;
          } catch (err) {
            last = (err as Error).message;
          }
          heartbeat({ smoke: c.url, last });
          await sleep(Math.min(poll, 1_000));
        }
        throw fail(`GET ${c.url}: ${last} (for ${c.timeoutMs} ms)`);
      });
    },

    async acquireDeployLock(raw) {
      const input = check(deployLockInputSchema, raw, 'acquireDeployLock');
      const started = Date.now();
      const name = leaseName(input.service);
      let tookOverFrom: string | undefined;
      let waitedFor: string | undefined;
      const canTakeOver = async (holder: string) => {
        const active = deps.holderActive ? await deps.holderActive(holder) : true;
        if (!active) tookOverFrom = holder;
        return !active;
      };
      return guarded(async () => {
        // Waits until the activity's own timeout (busyTimeout) when the policy is to wait; Temporal cancels it then.
        for (;;) {
          const r = await cluster.acquireLease(input.target, name, input.holder, input.note, canTakeOver);
          if (r.acquired) return { acquired: true, waitedMs: Date.now() - started, ...(tookOverFrom ? { tookOverFrom } : {}), ...(waitedFor ? { waitedFor } : {}) };
          const busy = `${input.environment} (${where(input.target)}) is held by release ${r.holder}${r.note ? ` (${r.note})` : ''} since ${r.since ?? '?'}`;
          if (input.whenBusy === 'refuse') throw ApplicationFailure.nonRetryable(`${busy}; policy whenBusy=refuse`, ErrorTypes.EnvironmentBusy);
          waitedFor = r.holder;
          heartbeat({ waitingFor: r.holder, note: r.note });
          await sleep(poll);
          if (signal()?.aborted) throw new CancelledFailure('lock wait cancelled');
        }
      });
    },

    async releaseDeployLock(raw) {
      const input = check(deployLockInputSchema, raw, 'releaseDeployLock');
      return guarded(async () => ({ released: await cluster.releaseLease(input.target, leaseName(input.service), input.holder) }));
    },
  };
}

/** Temporal's view of a lock holder: a release that is no longer running cannot be holding an environment. */
export async function releaseIsRunning(holder: string): Promise<boolean> {
  try {
    const d = await Context.current().client.workflow.getHandle(holder).describe();
    return d.status.name === 'RUNNING';
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') return false;
    return true; // unknown: assume it is alive, never steal a lock on a guess
  }
}
