/**
 * Helm and Kubernetes failures as Temporal failures, for every step that talks to a cluster (deploy, canary):
 * configuration and chart errors are final, outages are retried.
 */
import { HelmError, helmFailure } from '../helm/helm';
import { KubeError, kubeFailure } from '../kubernetes/cluster';

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
