/**
 * `slipway release rollback`: returns one environment to the Helm revision a finished release replaced. Its own
 * workflow, so the rollback has a history of its own in Temporal Web; it takes the environment's lock like a deploy.
 */
import { ApplicationFailure, CancellationScope, workflowInfo } from '@temporalio/workflow';
import { ErrorTypes } from '../model/errors';
import { kubeActs, lockActs } from './proxies';
import type { DeployLockInput, RollbackRequest, RollbackResult } from '../model/types';

const LOCK_WAIT_MS = 10 * 60_000;

export async function rollbackWorkflow(req: RollbackRequest): Promise<RollbackResult & { environment: string; by: string }> {
  if (!req?.service || !req.environment || !req.target?.context || !(req.toRevision >= 0)) {
    throw ApplicationFailure.nonRetryable('invalid rollback request: service, environment, target and toRevision are required', ErrorTypes.InvalidInput);
  }
  const lock: DeployLockInput = {
    service: req.service,
    environment: req.environment,
    target: req.target,
    // The rollback's own workflow id: a lock holder is checked for liveness by its id.
    holder: workflowInfo().workflowId,
    whenBusy: 'wait',
    note: `rollback by ${req.by}`,
  };
  await lockActs(LOCK_WAIT_MS).acquireDeployLock(lock);
  try {
    const r = await kubeActs.rollbackDeploy({
      releaseId: req.releaseId,
      runId: req.runId,
      service: req.service,
      environment: req.environment,
      target: req.target,
      toRevision: req.toRevision,
      reason: `${req.reason} (by ${req.by})`,
      timeoutMs: req.timeoutMs,
    });
    return { ...r, environment: req.environment, by: req.by };
  } finally {
    await CancellationScope.nonCancellable(() => kubeActs.releaseDeployLock(lock));
  }
}
