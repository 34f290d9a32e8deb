/**
 * GitOps delivery (issue #13): for an environment whose plan has `gitops`, the deploy stage is a change in the
 * environment repository — pushed directly, or on a release branch with a pull request that someone (or auto-merge)
 * merges — then the wait for Flux to apply the commit, then the smoke checks. Compensation reverts the change (a
 * commit, or a revert pull request per the merge policy) and waits for Flux to apply the revert.
 * Runs from before GitOps have no `gitops` in their plan and never reach this code.
 */
import { ApplicationFailure, CancellationScope, condition, setHandler, workflowInfo } from '@temporalio/workflow';
import { ErrorTypes } from '../../model/errors';
import type { EnvironmentPlan, GitopsRecord, ReleaseInput, SmokeTestResult, StartCanaryResult } from '../../model/types';
import type { PullRequestStatus } from '../../activities/gitops/ports';
import { gitopsPullRequestChangedUpdate } from '../messages';
import { FLUX_WAIT_MAX_MS, fluxActs, gitopsActs, kubeActs } from '../proxies';
import type { CanaryLoop } from './canary-loop';
import { iso, messageOf, type Release } from './status';

/** Without a webhook, the pull request is read this often (a webhook's Update wakes the wait at once). */
export const PULL_REQUEST_POLL_MS = 30_000;

const refusal = (reason: string) => ApplicationFailure.nonRetryable(reason, ErrorTypes.InvalidInput);

export class GitopsDeliveries {
  /** Environments whose repository this release may have changed, in order: compensation reverts them, newest first. */
  private readonly touched: EnvironmentPlan[] = [];
  /** The pull request the release waits on, and whether a webhook said it changed since the last read. */
  private waiting: { environment: string; number: number; poked: boolean } | undefined;
  private readonly releaseId = workflowInfo().workflowId;
  /** Live canaries by environment: removed once Flux applied the promotion, or by compensation. */
  private readonly canaries = new Map<string, EnvironmentPlan>();

  constructor(
    private readonly input: ReleaseInput,
    private readonly release: Release,
    private readonly canary?: CanaryLoop,
  ) {}

  /** The webhook receiver's nudge; refused (leaving no event) unless the release waits for that pull request. */
  listen(): this {
    setHandler(
      gitopsPullRequestChangedUpdate,
      () => {
        if (this.waiting) this.waiting.poked = true;
        return { accepted: true };
      },
      {
        validator: (req) => {
          if (typeof req?.environment !== 'string' || !Number.isInteger(req?.number)) throw refusal('environment (a string) and number (a whole number) are required');
          const w = this.waiting;
          if (!w || w.environment !== req.environment || w.number !== req.number) throw refusal(`this release is not waiting for pull request #${req.number} in ${req.environment}`);
        },
      },
    );
    return this;
  }

  /** Whether the pull request's reviews stand in for Slipway's approval gate in this environment. */
  static reviewsApprove(env: EnvironmentPlan): boolean {
    return Boolean(env.gitops?.delivery.approvals);
  }

  private record(env: string): GitopsRecord {
    return this.release.status.gitops![env];
  }

  /**
   * A canary before the Git change: Slipway's copy of the Deployment Flux applied runs the new digest and takes traffic
   * by the plan's router; none of those objects is in the environment repository, so a reconcile leaves them alone.
   * Returns whether the analysis ran (nothing deployed there yet: no baseline, the change goes straight to Git).
   */
  private async canaryFirst(env: EnvironmentPlan): Promise<boolean> {
    const g = env.gitops!;
    const plan = env.canary!;
    const id = `canary:${env.name}`;
    const image = `${env.registry.host}/${env.repository}@${this.release.status.digest}`;
    let analysed = false;
    await this.release.run(id, async () => {
      const weights = plan.steps.flatMap((s, step) => ('setWeight' in s ? [{ step, weight: s.setWeight }] : []));
      this.canaries.set(env.name, env);
      const started: StartCanaryResult = await kubeActs.startCanary({ releaseId: this.releaseId, service: this.input.service, environment: env.name, target: g.target, image, traffic: plan.traffic, weights, noStable: 'absent' });
      if (started.absent) {
        this.canaries.delete(env.name);
        return { skipped: true, note: 'nothing runs here yet: there is no baseline to compare with, so the change goes to Git directly' };
      }
      const analysis = await this.canary!.analyse(env, started);
      analysed = true;
      // Promotion is the Git change that follows; the canary keeps serving until Flux has applied it.
      this.release.status.canary!.state = 'promoting';
      return { canary: started.canary, stableImage: started.stableImage, ...analysis };
    });
    return analysed;
  }

  private async removeCanary(env: EnvironmentPlan): Promise<void> {
    await kubeActs.removeCanary({ service: this.input.service, target: env.gitops!.target, traffic: env.canary!.traffic });
    this.canaries.delete(env.name);
  }

  /** The deploy stage of a gitops environment: [canary →] change → (pull request → merge) → Flux applied; then the smoke checks. */
  async deliver(env: EnvironmentPlan): Promise<void> {
    const g = env.gitops!;
    const d = g.delivery;
    const status = this.release.status;
    const analysed = env.canary ? await this.canaryFirst(env) : false;
    status.gitops = { ...(status.gitops ?? {}), [env.name]: { repository: d.repository.url, branch: d.repository.branch, merge: d.merge, state: 'changing' } };
    const record = this.record(env.name);
    const id = `deploy:${env.name}`;
    await this.release.run(id, async () => {
      const change = { workflowId: this.releaseId, environment: env.name, service: this.input.service, version: this.input.version, repository: `${env.registry.host}/${env.repository}`, digest: status.digest! };
      // From here a failure reverts; the revert of a change that never reached the target branch does nothing.
      this.touched.push(env);
      const prepared = await gitopsActs.gitopsApplyChange({ delivery: d, change, to: d.merge === 'direct' ? 'direct' : 'branch' });
      let commit = prepared.commit ?? prepared.base;
      record.commit = commit;
      let decision: Record<string, unknown> = {};
      if (prepared.state === 'branch') {
        const pr = await gitopsActs.gitopsOpenPullRequest({
          delivery: d,
          head: prepared.branch,
          title: `${this.input.service} ${this.input.version} to ${env.name}`,
          body: `Slipway release ${this.releaseId} (requested by ${this.input.requester}): ${change.repository}@${change.digest}.\nMerging this pull request deploys it to ${env.name}; closing it rejects the release.`,
        });
        record.pullRequest = { number: pr.number, url: pr.url, state: pr.state };
        record.state = 'awaiting-merge';
        this.release.stage(id).state = 'waiting';
        const merged = await this.awaitMerge(env, pr.number, prepared.commit);
        this.release.stage(id).state = 'running';
        commit = merged.mergeCommit ?? prepared.commit!;
        record.state = 'merged';
        // The merge is the environment's decision (and, with approvals.fromReviews, so are the approving reviews).
        const at = iso();
        const reviewers = d.approvals ? merged.approvedBy : [];
        for (const r of reviewers) status.approvals.push({ environment: env.name, approver: r, decision: 'approved', comment: `approving review on ${merged.url}`, at });
        status.approvals.push({ environment: env.name, approver: merged.mergedBy ?? 'unknown', decision: 'approved', comment: `merged ${merged.url} as ${commit}`, at });
        decision = { pullRequest: merged.url, mergedBy: merged.mergedBy, mergeCommit: commit, approvedBy: merged.approvedBy };
      }
      record.commit = commit;
      record.state = 'applying';
      const applied = await fluxActs.waitFluxApplied({ target: g.target, flux: g.flux, commit, timeoutMs: Math.min(g.timeoutMs, FLUX_WAIT_MAX_MS) });
      record.appliedRevision = applied.revision;
      record.state = 'applied';
      if (analysed) {
        // Flux now runs the new digest in the stable Deployment: traffic back to it, the copy removed.
        await this.removeCanary(env);
        status.canary!.state = 'promoted';
      }
      return { change: prepared.state, reused: prepared.reused, ...(prepared.previousDigest ? { previousDigest: prepared.previousDigest } : {}), ...decision, commit, applied: applied.revision, waitedMs: applied.waitedMs };
    });
    if (g.smoke.length) {
      await this.release.run(`smoke:${env.name}`, async () => {
        const checks: SmokeTestResult[] = [];
        for (const check of g.smoke) checks.push(await kubeActs.smokeTest({ service: this.input.service, environment: env.name, target: g.target, check }));
        return { checks };
      });
    }
  }

  /**
   * Waits for the pull request to be merged: woken by the webhook's Update, else read every PULL_REQUEST_POLL_MS,
   * bounded by the merge timeout (the environment's approval timeout). Auto-merge merges once the reviews suffice.
   * Closed unmerged rejects the release; merged without the reviews the environment requires fails it (and reverts).
   */
  private async awaitMerge(env: EnvironmentPlan, number: number, head: string | undefined): Promise<PullRequestStatus> {
    const g = env.gitops!;
    const d = g.delivery;
    const record = this.record(env.name);
    const need = d.approvals?.count ?? 0;
    const deadline = Date.now() + g.mergeTimeoutMs;
    this.waiting = { environment: env.name, number, poked: false };
    try {
      for (;;) {
        this.waiting.poked = false;
        let pr = await gitopsActs.gitopsPullRequestStatus({ delivery: d, number });
        if (pr.state === 'open' && d.merge === 'auto-merge' && pr.approvedBy.length >= need) pr = await gitopsActs.gitopsMergePullRequest({ delivery: d, number, ...(head ? { sha: head } : {}) });
        record.pullRequest = { number: pr.number, url: pr.url, state: pr.state, ...(pr.mergeCommit ? { mergeCommit: pr.mergeCommit } : {}), ...(pr.mergedBy ? { mergedBy: pr.mergedBy } : {}), ...(pr.mergedAt ? { mergedAt: pr.mergedAt } : {}), approvedBy: pr.approvedBy };
        if (pr.state === 'merged') {
          if (pr.approvedBy.length < need) {
            throw ApplicationFailure.nonRetryable(`pull request ${pr.url} was merged with ${pr.approvedBy.length}/${need} approving reviews; ${env.name} requires ${need}`, ErrorTypes.ApprovalRefused);
          }
          return pr;
        }
        if (pr.state === 'closed') throw ApplicationFailure.nonRetryable(`pull request ${pr.url} was closed without being merged: release rejected for ${env.name}`, ErrorTypes.PullRequestClosed);
        const left = deadline - Date.now();
        if (left <= 0) throw ApplicationFailure.nonRetryable(`pull request ${pr.url} for ${env.name} was not merged by ${iso(deadline)}`, ErrorTypes.ApprovalExpired);
        await condition(() => this.waiting!.poked, Math.min(PULL_REQUEST_POLL_MS, left));
      }
    } finally {
      this.waiting = undefined;
    }
  }

  /** Compensation: reverts each touched environment's change, newest first; returns a note of what could not be undone. */
  async rollBackAll(reason: string): Promise<string | undefined> {
    if (!this.touched.length && !this.canaries.size) return undefined;
    const problems: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      // A live canary goes first: traffic back to the stable Deployment, the copy removed (Git never changed for it).
      for (const [name, env] of [...this.canaries]) {
        try {
          await this.removeCanary(env);
          const c = this.release.status.canary;
          if (c?.environment === name) c.state = 'rolled-back';
        } catch (err) {
          problems.push(`removing the canary in ${name} failed: ${messageOf(err)}`);
        }
      }
      for (const env of [...this.touched].reverse()) {
        const id = `rollback:${env.name}`;
        this.release.addStage(id, 'rollback', env.name);
        const record = this.record(env.name);
        try {
          await this.release.run(id, () => this.revert(env, reason));
        } catch (err) {
          record.state = 'revert-failed';
          problems.push(`revert of ${env.name} failed: ${messageOf(err)}`);
        }
        if (record.pullRequest?.state === 'open') problems.push(`the pull request ${record.pullRequest.url} is still open: close it`);
        if (record.state === 'revert-pull-request') problems.push(`${env.name} is rolled back once the revert pull request ${record.revert?.pullRequest?.url} is merged`);
      }
    });
    return problems.length ? problems.join('\n') : undefined;
  }

  private async revert(env: EnvironmentPlan, reason: string): Promise<Record<string, unknown>> {
    const g = env.gitops!;
    const d = g.delivery;
    const record = this.record(env.name);
    record.state = 'reverting';
    const r = await gitopsActs.gitopsRevertChange({ delivery: d, workflowId: this.releaseId, environment: env.name, to: d.merge === 'direct' ? 'direct' : 'branch' });
    if (r.state === 'nothing' || r.state === 'unchanged') {
      record.state = 'reverted';
      return { action: 'nothing-to-revert', note: "the release's change never reached the target branch" };
    }
    let commit = r.commit ?? r.base;
    if (r.state === 'branch') {
      const pr = await gitopsActs.gitopsOpenPullRequest({ delivery: d, head: r.branch, title: `Revert ${this.input.service} ${this.input.version} in ${env.name}`, body: `Slipway rolls back release ${this.releaseId}: ${reason.slice(0, 2000)}` });
      record.revert = { ...(r.commit ? { commit: r.commit } : {}), pullRequest: { number: pr.number, url: pr.url } };
      const merged = d.merge === 'auto-merge' ? await gitopsActs.gitopsMergePullRequest({ delivery: d, number: pr.number, ...(r.commit ? { sha: r.commit } : {}) }) : undefined;
      if (merged?.state !== 'merged') {
        // The merge policy puts a person between Slipway and the branch: the revert waits for them.
        record.state = 'revert-pull-request';
        return { action: 'revert-pull-request', pullRequest: pr.url };
      }
      commit = merged.mergeCommit ?? r.commit!;
    }
    record.revert = { ...record.revert, commit };
    const applied = await fluxActs.waitFluxApplied({ target: g.target, flux: g.flux, commit, timeoutMs: Math.min(g.timeoutMs, FLUX_WAIT_MAX_MS) });
    record.state = 'reverted';
    return { action: 'reverted', reverts: r.reverts, commit, applied: applied.revision };
  }
}
