/**
 * Flux as the GitOps controller (activities/gitops/ports.ts GitOpsController), through the Kubernetes API's custom
 * objects: a reconcile is requested by a new `reconcile.fluxcd.io/requestedAt` on the GitRepository (source-controller
 * fetches at once; a new artifact makes kustomize-controller apply), then the Kustomization is read until its
 * lastAppliedRevision holds the commit and it is Ready. A reconcile of that commit that failed ends the wait with
 * Flux's own message. Bounded by the caller's timeout; heartbeats each poll.
 */
import { ErrorTypes } from '../../model/errors';
import { portError } from '../errors';
import type { FluxApplied, FluxWaitRequest, GitOpsController } from '../gitops/ports';
import { k8s } from '../kubernetes/client';
import { KubeError, kubeFailure, type KubeCluster } from '../kubernetes/cluster';

export const RECONCILE_REQUESTED_AT = 'reconcile.fluxcd.io/requestedAt';
const GIT_REPOSITORY = { group: 'source.toolkit.fluxcd.io', version: 'v1', plural: 'gitrepositories' };
const KUSTOMIZATION = { group: 'kustomize.toolkit.fluxcd.io', version: 'v1', plural: 'kustomizations' };

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
export interface KustomizationStatus {
  conditions?: Condition[];
  lastAppliedRevision?: string;
  lastAttemptedRevision?: string;
}

/** Flux writes revisions as `<branch>@sha1:<commit>` (v1) or `<branch>/<commit>` (older): either holds the commit. */
export const holdsCommit = (revision: string | undefined, commit: string): boolean => Boolean(revision && commit && revision.includes(commit));

/** What one reading of the Kustomization means for the wait: applied, failed (with Flux's reason), or not yet. */
export function judgeKustomization(s: KustomizationStatus, commit: string): { outcome: 'applied' | 'failed' | 'pending'; detail: string } {
  const ready = s.conditions?.find((c) => c.type === 'Ready');
  const detail = ready ? `Ready=${ready.status}${ready.reason ? ` (${ready.reason})` : ''}${ready.message ? `: ${ready.message}` : ''}` : 'no Ready condition yet';
  if (holdsCommit(s.lastAppliedRevision, commit) && ready?.status === 'True') return { outcome: 'applied', detail };
  // Flux tried this very commit and could not apply it: its Ready=False message says why (a bad manifest, a failed health check).
  if (holdsCommit(s.lastAttemptedRevision, commit) && !holdsCommit(s.lastAppliedRevision, commit) && ready?.status === 'False') return { outcome: 'failed', detail };
  return { outcome: 'pending', detail };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

export class FluxController implements GitOpsController {
  constructor(
    private readonly cluster: Pick<KubeCluster, 'api' | 'call'>,
    private readonly pollMs = 2_000,
  ) {}

  async waitApplied(req: FluxWaitRequest, beat: (d: Record<string, unknown>) => void, signal?: AbortSignal): Promise<FluxApplied> {
    const where = { context: req.target.context, namespace: req.flux.namespace };
    const custom = await this.kube(where, 'connect', async () => this.cluster.api(req.target.context, k8s.CustomObjectsApi));
    const requestedAt = new Date().toISOString();
    await this.kube(where, 'annotate the GitRepository', () =>
      custom.patchNamespacedCustomObject(
        { ...GIT_REPOSITORY, namespace: req.flux.namespace, name: req.flux.gitRepository, body: { metadata: { annotations: { [RECONCILE_REQUESTED_AT]: requestedAt } } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      ),
    );
    const started = Date.now();
    const name = `Kustomization ${req.flux.namespace}/${req.flux.kustomization}`;
    for (;;) {
      const obj = (await this.kube(where, `read the ${name}`, () => custom.getNamespacedCustomObject({ ...KUSTOMIZATION, namespace: req.flux.namespace, name: req.flux.kustomization }))) as { status?: KustomizationStatus };
      const s = obj.status ?? {};
      const verdict = judgeKustomization(s, req.commit);
      if (verdict.outcome === 'applied') return { revision: s.lastAppliedRevision!, waitedMs: Date.now() - started, requestedAt };
      if (verdict.outcome === 'failed') throw portError(ErrorTypes.FluxApplyFailed, `Flux could not apply ${req.commit} (${name}): ${verdict.detail}`, { revision: s.lastAttemptedRevision });
      beat({ waiting: name, commit: req.commit, lastAppliedRevision: s.lastAppliedRevision, state: verdict.detail });
      if (Date.now() - started >= req.timeoutMs || signal?.aborted) {
        throw portError(ErrorTypes.FluxApplyFailed, `Flux did not apply ${req.commit} within ${req.timeoutMs} ms (${name}: last applied ${s.lastAppliedRevision ?? 'nothing'}, ${verdict.detail})`);
      }
      await sleep(this.pollMs, signal);
    }
  }

  /** Kubernetes errors in the catalogue's words: an unreachable cluster is retried, a 404 names the missing object. */
  private async kube<T>(where: { context: string; namespace: string }, what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await this.cluster.call(where, what, fn);
    } catch (err) {
      if (err instanceof KubeError) throw kubeFailure(err);
      const code = (err as { code?: number })?.code;
      if (code === 404) throw portError(ErrorTypes.ClusterConfig, `${what} in ${where.context}/${where.namespace}: not found (is Flux installed, and are delivery.flux's names right?)`);
      throw err;
    }
  }
}
