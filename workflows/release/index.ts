/**
 * The release workflow: build → scan → push → chart → deploy + smoke (first environment) → per later environment:
 * approval → scan → promote by digest → deploy + smoke. A failure or abort after a deploy rolls back what it touched.
 * Deterministic only: all I/O is in activities, all time is workflow time. The stages are in the modules beside
 * this one; this file is the order they run in, which recorded histories replay: keep it.
 */
import { ApplicationFailure, CancellationScope, isCancellation, log, setHandler } from '@temporalio/workflow';
import { ErrorTypes, explainFailure } from '../../model/errors';
import type { ReleaseInput, ReleaseResult, StartRequest } from '../../model/types';
import { statusQuery } from '../messages';
import { listenForAbort } from './abort';
import { ApprovalGate, Decisions } from './approval-gate';
import { CanaryLoop, listenForCanaryActions } from './canary-loop';
import { Deploys } from './deploys';
import { GitopsDeliveries } from './gitops';
import { Stages } from './stages';
import { startRelease } from './start';
import { messageOf, Release } from './status';

export async function releaseWorkflow(rawInput: StartRequest | ReleaseInput): Promise<ReleaseResult> {
  const { input, trust, resolved } = await startRelease(rawInput);
  const release = new Release(input, resolved);
  const status = release.status;
  setHandler(statusQuery, () => status);

  // What people may send a running release: approvals, an abort, actions on a canary.
  const decisions = new Decisions(trust);
  const approvals = new ApprovalGate(input, release, decisions).listen();
  const pipeline = new CancellationScope();
  const aborted = listenForAbort(input, release, decisions, () => pipeline.cancel());
  const canary = new CanaryLoop(input, release);
  const deploys = new Deploys(input, release, canary);
  listenForCanaryActions(canary, input, release, decisions);
  const gitops = new GitopsDeliveries(input, release, canary).listen();

  try {
    await pipeline.run(() => runStages(input, release, approvals, deploys, gitops));
    await deploys.unlockAll();
    release.finish('succeeded');
    log.info('release succeeded', { digest: status.digest });
    return status;
  } catch (err) {
    const abort = aborted();
    // Compensation: every environment this release touched goes back to the revision it found there.
    const why = abort ? `aborted by ${abort.by}: ${abort.reason}` : messageOf(err);
    release.note = await deploys.rollBackAll(why);
    // GitOps environments: their changes are reverted in the environment repository (runs without any: no-op).
    const reverted = await gitops.rollBackAll(why);
    if (reverted) release.note = release.note ? `${release.note}\n${reverted}` : reverted;
    await deploys.unlockAll();
    if (abort && isCancellation(err)) {
      release.finish('aborted', `aborted by ${abort.by}: ${abort.reason}`);
      throw ApplicationFailure.nonRetryable(status.error!, ErrorTypes.ReleaseAborted, status);
    }
    // A gitops pull request closed unmerged is a rejection too (only gitops runs raise it).
    const rejected = (t: string) => t === ErrorTypes.ApprovalRejected || t === ErrorTypes.PullRequestClosed;
    if (err instanceof ApplicationFailure && (rejected(err.type ?? '') || err.type === ErrorTypes.ApprovalExpired)) {
      release.finish(rejected(err.type ?? '') ? 'rejected' : 'expired', err.message);
      throw ApplicationFailure.nonRetryable(err.message, err.type, status);
    }
    // One vocabulary: a timed-out or exhausted step fails with its own type and says which bound it hit.
    const { type, message } = explainFailure(err);
    release.finish('failed', message);
    throw ApplicationFailure.nonRetryable(message, type, status);
  }
}

/** The release process, stage by stage. */
async function runStages(input: ReleaseInput, release: Release, approvals: ApprovalGate, deploys: Deploys, gitops: GitopsDeliveries): Promise<void> {
  const stages = new Stages(input, release);
  const [first, ...later] = input.environments;

  if (deploys.any) await release.run('preflight', () => deploys.preflight());
  if (input.build) {
    const built = await stages.build();
    if (first.scan) await stages.scanBuilt(first, built);
    await stages.push(first, built);
  } else {
    const scannedDigest = first.scan ? await stages.scanSource(first) : undefined;
    await stages.importImage(first, scannedDigest);
  }
  if (deploys.any) await stages.chart(first);
  if (first.deploy) await deploys.deploy(first, later.length > 0);
  else if (first.gitops) await gitops.deliver(first);

  let from = first;
  for (const env of later) {
    // With approvals.fromReviews the pull request's reviews are the approval (checked at its merge).
    if (env.approval && GitopsDeliveries.reviewsApprove(env)) release.end(`approval:${env.name}`, 'skipped', { note: "the pull request's approving reviews decide" });
    else if (env.approval) await approvals.wait(env);
    if (env.scan) await stages.rescan(from, env);
    await stages.promote(from, env);
    from = env;
    if (env.deploy) await deploys.deploy(env, env !== later[later.length - 1]);
    else if (env.gitops) await gitops.deliver(env);
  }
}
