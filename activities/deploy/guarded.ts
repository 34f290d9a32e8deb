/**
 * Helm and Kubernetes failures as Temporal failures, for every step that talks to a cluster (deploy, canary):
 * configuration and chart errors are final, outages are retried.
 */
import type { ApplicationFailure } from '@temporalio/activity';
import { ErrorTypes } from '../../model/errors';
import { portError } from '../errors';
import { HelmError, helmFailure } from '../helm/helm';
import { KubeError } from '../kubernetes/cluster';

/**
 * The Kubernetes adapter's failures in the shared vocabulary: a context the kubeconfig lacks or a cluster that
 * refuses the worker is final (ClusterConfig); no answer, or an unexpected one, may pass (ClusterUnreachable).
 * It lives here rather than beside KubeError (kubernetes/cluster.ts) only because that file has another owner.
 */
export function kubeFailure(err: KubeError): ApplicationFailure {
  if (err.kind === 'unknown-context' || err.kind === 'forbidden') return portError(ErrorTypes.ClusterConfig, err.message);
  return portError(ErrorTypes.ClusterUnreachable, err.message);
}

/** An adapter error in the vocabulary; anything else (already a failure, a programming error) passes unchanged. */
export function clusterFailure(err: unknown): unknown {
  if (err instanceof KubeError) return kubeFailure(err);
  if (err instanceof HelmError) return helmFailure(err);
  return err;
}

export async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw clusterFailure(err);
  }
}
