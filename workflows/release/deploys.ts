/**
 * The deploy side of a release: one lock per environment (a Lease named after the service), the revision found
 * before each deploy, deploy + canary + smoke, and the compensation saga — the rollbacks when the release fails or
 * is aborted after touching an environment.
 */
import { ActivityFailure, ApplicationFailure, CancellationScope, log, TimeoutFailure, workflowInfo } from '@temporalio/workflow';
import { ErrorTypes } from '../../model/errors';
import type { DeployLockInput, DeployLockResult, EnvironmentPlan, ReleaseInput, RollbackResult, SmokeTestResult, StartCanaryResult } from '../../model/types';
import { deployActs, kubeActs, lockActs } from '../proxies';
import type { CanaryLoop } from './canary-loop';
import { messageOf, type Release } from './status';

/** An environment this release changed, and the Helm revision to return it to. */
interface Touched {
  env: EnvironmentPlan;
  previousRevision: number;
}

export class Deploys {
  readonly any: boolean;
  private readonly touched: Touched[] = [];
  private readonly locks = new Map<string, DeployLockInput>();
  /** Live canaries by environment: removed on promotion, or by compensation. */
  private readonly canaries = new Map<string, EnvironmentPlan>();
  private readonly releaseId = workflowInfo().workflowId;
  private readonly runId = workflowInfo().runId;

  constructor(
    private readonly input: ReleaseInput,
    private readonly release: Release,
    private readonly canary: CanaryLoop,
  ) {
    this.any = input.environments.some((e) => e.deploy);
  }

  private lockInput(env: EnvironmentPlan, whenBusy: 'wait' | 'refuse' = env.deploy!.whenBusy): DeployLockInput {
    return { service: this.input.service, environment: env.name, target: env.deploy!.target, holder: this.releaseId, whenBusy, note: `${this.input.version} by ${this.input.requester}` };
  }

  /** Before anything is built or pushed: every cluster is known to the workers and answers. */
  async preflight(): Promise<Record<string, unknown>> {
    const found: Record<string, unknown> = {};
    for (const env of this.input.environments.filter((e) => e.deploy)) {
      const state = await kubeActs.inspectDeploy({ service: this.input.service, target: env.deploy!.target });
      found[env.name] = { context: env.deploy!.target.context, namespace: env.deploy!.target.namespace, deployed: state };
    }
    return { environments: found };
  }

  private async lock(env: EnvironmentPlan, whenBusy?: 'wait' | 'refuse'): Promise<DeployLockResult> {
    const req = this.lockInput(env, whenBusy);
    try {
      const r = await lockActs(env.deploy!.busyTimeoutMs).acquireDeployLock(req);
      this.locks.set(env.name, req);
      return r;
    } catch (err) {
      // The lock's budget ran out while another release held the environment: a failure with a type of its own.
      if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure) {
        throw ApplicationFailure.nonRetryable(`${env.name} stayed busy with another release of ${this.input.service} for ${env.deploy!.busyTimeoutMs} ms`, ErrorTypes.EnvironmentBusy);
      }
      throw err;
    }
  }

  private async unlock(env: string): Promise<void> {
    const req = this.locks.get(env);
    if (!req) return;
    await kubeActs.releaseDeployLock(req);
    this.locks.delete(env);
  }

  async unlockAll(): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      for (const env of [...this.locks.keys()]) await this.unlock(env).catch((err) => log.warn('could not release a deploy lock', { env, error: messageOf(err) }));
    });
  }

  /**
   * Lock → capture the current revision → upgrade by digest → smoke test. With a canary plan and a release already
   * running there, the upgrade waits: the new image runs as a canary first and Helm changes only on promotion.
   */
  async deploy(env: EnvironmentPlan, unlockAfter: boolean): Promise<void> {
    const plan = env.deploy!;
    const status = this.release.status;
    const repository = `${env.registry.host}/${env.repository}`;
    const image = `${repository}@${status.digest}`;
    let canary: StartCanaryResult | undefined;
    let previousRevision = 0;
    await this.release.run(`deploy:${env.name}`, async () => {
      const lock = await this.lock(env);
      const before = await kubeActs.inspectDeploy({ service: this.input.service, target: plan.target });
      previousRevision = before.revision;
      status.deployments = { ...(status.deployments ?? {}), [env.name]: { ...plan.target, release: this.input.service, previousRevision, image, state: 'deploying' } };
      if (env.canary && before.revision > 0) {
        const weights = env.canary.steps.flatMap((s, step) => ('setWeight' in s ? [{ step, weight: s.setWeight }] : []));
        canary = await kubeActs.startCanary({ releaseId: this.releaseId, service: this.input.service, environment: env.name, target: plan.target, image, traffic: env.canary.traffic, weights });
        this.canaries.set(env.name, env);
        status.deployments[env.name].state = 'canary';
        return { canary: canary.canary, stableImage: canary.stableImage, stableReplicas: canary.stableReplicas, previousRevision, lock };
      }
      const r = await this.upgrade(env, image, previousRevision);
      return { ...r, previousRevision, ...(before.appVersion ? { previousVersion: before.appVersion } : {}), lock };
    });
    if (env.canary) {
      const id = `canary:${env.name}`;
      if (!canary) this.release.end(id, 'skipped', { note: 'nothing was deployed here before: there is no baseline to compare with, so the release was deployed directly' });
      else {
        await this.release.run(id, async () => {
          const analysis = await this.canary.analyse(env, canary!);
          // Promotion: the canary's image becomes the stable one (a Helm upgrade), then the canary goes.
          this.release.status.canary!.state = 'promoting';
          const r = await this.upgrade(env, image, previousRevision);
          await kubeActs.removeCanary({ service: this.input.service, target: plan.target, traffic: env.canary!.traffic });
          this.canaries.delete(env.name);
          this.release.status.canary!.state = 'promoted';
          return { ...analysis, promotedRevision: r.revision };
        });
      }
    }
    if (plan.smoke.length) {
      await this.release.run(`smoke:${env.name}`, async () => {
        const checks: SmokeTestResult[] = [];
        for (const check of plan.smoke) checks.push(await kubeActs.smokeTest({ service: this.input.service, environment: env.name, target: plan.target, check }));
        return { checks };
      });
    }
    if (unlockAfter) await this.unlock(env.name);
  }

  /** `helm upgrade --install --wait` of the release's chart and digest; the environment counts as touched from here. */
  private async upgrade(env: EnvironmentPlan, image: string, previousRevision: number) {
    const plan = env.deploy!;
    const status = this.release.status;
    const record = status.deployments![env.name];
    this.touched.push({ env, previousRevision });
    const r = await deployActs(plan.timeoutMs).deployChart({
      releaseId: this.releaseId,
      runId: this.runId,
      service: this.input.service,
      version: this.input.version,
      environment: env.name,
      target: plan.target,
      chart: { registry: this.input.environments[0].registry, repository: this.input.chart!.repository, digest: status.chart!.digest },
      image: { repository: image.slice(0, image.indexOf('@')), digest: status.digest! },
      values: plan.values,
      ...(plan.imageValues ? { imageValues: plan.imageValues } : {}),
      timeoutMs: plan.timeoutMs,
      owner: this.input.requester,
      changeCause: `slipway ${this.input.service} ${this.input.version} (${this.releaseId}) by ${this.input.requester}`,
    });
    record.revision = r.revision;
    record.state = 'deployed';
    return r;
  }

  /** Compensation: rolls back every touched environment, newest first; returns a note when a rollback could not be done. */
  async rollBackAll(reason: string): Promise<string | undefined> {
    if (!this.touched.length && !this.canaries.size) return undefined;
    const problems: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      // A live canary goes first: traffic back to stable, the canary's Deployment and Service removed.
      for (const [name, env] of [...this.canaries]) {
        try {
          await kubeActs.removeCanary({ service: this.input.service, target: env.deploy!.target, traffic: env.canary!.traffic });
          this.canaries.delete(name);
          const c = this.release.status.canary;
          if (c?.environment === name) c.state = 'rolled-back';
          const record = this.release.status.deployments?.[name];
          if (record?.state === 'canary') record.state = 'rolled-back';
        } catch (err) {
          problems.push(`removing the canary in ${name} failed: ${messageOf(err)}`);
        }
      }
      for (const t of [...this.touched].reverse()) {
        const id = `rollback:${t.env.name}`;
        this.release.addStage(id, 'rollback', t.env.name);
        const record = this.release.status.deployments?.[t.env.name];
        try {
          const r = await this.release.run(id, async () => {
            // A newer release of the service may hold the environment by now; then this one must not touch it.
            if (!this.locks.has(t.env.name)) {
              const got = await this.lock(t.env, 'refuse').catch((err) => err);
              if (got instanceof Error) return { action: 'skipped', toRevision: t.previousRevision, note: messageOf(got) } as RollbackResult;
            }
            return kubeActs.rollbackDeploy({
              releaseId: this.releaseId,
              runId: this.runId,
              service: this.input.service,
              environment: t.env.name,
              target: t.env.deploy!.target,
              toRevision: t.previousRevision,
              reason,
              timeoutMs: t.env.deploy!.timeoutMs,
            });
          });
          if (record) record.state = r.action === 'skipped' ? 'rollback-skipped' : 'rolled-back';
        } catch (err) {
          if (record) record.state = 'rollback-failed';
          problems.push(`rollback of ${t.env.name} failed: ${messageOf(err)}`);
        }
      }
    });
    return problems.length ? problems.join('\n') : undefined;
  }
}
