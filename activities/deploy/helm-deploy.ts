/**
 * `helm upgrade --install --wait` by digest, idempotent across worker deaths: the release id is written into the
 * Helm values, so a retried attempt finds the revision its predecessor started and waits for it instead of
 * upgrading a second time, and a revision its dead predecessor left pending is recovered first.
 */
import type { ApplicationFailure } from '@temporalio/activity';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorTypes } from '../../model/errors';
import { deployChartInputSchema, inspectDeployInputSchema, type DeployChartResult, type DeployedState, type KubeTargetPlan } from '../../model/types';
import { check, heartbeat, signal } from '../common';
import type { SlipwayActivities } from '../contract';
import { portError } from '../errors';
import { HelmError } from '../helm/helm';
import { DEFAULT_IMAGE_VALUES, pinningProblems, renderedContainers, withImageValues, type ReleaseImage } from '../helm/images';
import { parseImageRef } from '../../model/identifiers';
import type { RolloutState } from '../ports';
import { pullChart } from '../registry/artifact';
import { OciRegistryClient } from '../registry/oci-client';
import { guarded } from './guarded';
import { abandonedAfter, markOf, pollMs, settled, sleep, where, withTempDir, workloadOf, type DeployDeps } from './shared';

export function createHelmDeployActivities(deps: DeployDeps): Pick<SlipwayActivities, 'inspectDeploy' | 'deployChart'> {
  const poll = pollMs(deps);
  const { deployer, cluster } = deps;

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
    const deadline = Date.now() + abandonedAfter(deps);
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

  /** Polls the rollout (what `kubectl rollout status` does) until it completes, fails, or the deadline passes. */
  async function rolledOut(target: KubeTargetPlan, release: string, deadline: number): Promise<RolloutState> {
    const name = await workloadOf(cluster, target, release);
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
      throw portError(ErrorTypes.DeployFailed, `${release} in ${where(target)} runs no container of ${wanted.repository}:\n- ${seen.join('\n- ')}`);
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
      throw portError(ErrorTypes.DeployFailed, `${release} in ${where(target)} does not run ${wanted.repository}@${wanted.digest}:\n- ${wrong.join('\n- ')}`);
    }
    return { pods: new Set(containers.map((c) => c.pod)).size, containers: containers.length, by: byImageID ? 'imageID' : 'spec' };
  }

  /** A RolloutFailed naming the rollout's state and the reasons Kubernetes gives (details carry the state). */
  async function rolloutFailure(target: KubeTargetPlan, release: string, cause: string): Promise<ApplicationFailure> {
    const state = await cluster.rollout(target, await workloadOf(cluster, target, release)).catch(() => undefined);
    const reasons = [state?.failed, ...(state?.warnings ?? [])].filter(Boolean);
    const counts = state ? ` (${state.available}/${state.replicas} available, ${state.updated} updated)` : '';
    return portError(ErrorTypes.RolloutFailed, `rollout of ${release} in ${where(target)} failed${counts}: ${cause}${reasons.length ? `\nreasons:\n- ${reasons.join('\n- ')}` : ''}`, {
      rollout: state,
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
        const latest = (await settled(deps, target, release, input.timeoutMs, heartbeat)).at(-1);
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
            throw portError(ErrorTypes.HelmBusy, `${release} in ${where(target)} has an operation in progress (revision ${latest.revision} ${latest.status})`);
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
              throw portError(ErrorTypes.DeployFailed, `chart ${input.chart.repository}@${input.chart.digest} would not run ${image} in ${where(target)}:\n- ${problems.join('\n- ')}`);
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
  };
}
