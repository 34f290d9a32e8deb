/**
 * The Kubernetes adapter of the Cluster port (@kubernetes/client-node): rollout state with the reasons a rollout is
 * stuck, leases that keep two releases of a service out of one environment, and the inventory's workloads.
 */
import type { ApplicationFailure } from '@temporalio/activity';
import { ErrorTypes } from '../../model/errors';
import { portError } from '../errors';
import { k8s, type K8s } from './client';
import { endpointsOf } from './endpoints';
import type { Cluster, KubeTarget, PodContainerImage, RolloutState, ServiceEndpoints, WorkloadRecord } from '../ports';

export class KubeError extends Error {
  constructor(
    message: string,
    readonly kind: 'unknown-context' | 'unreachable' | 'forbidden' | 'failed',
  ) {
    super(message);
    this.name = 'KubeError';
  }
}

/**
 * The Kubernetes adapter's failures in the shared vocabulary: a context the kubeconfig lacks or a cluster that
 * refuses the worker is final (ClusterConfig); no answer, or an unexpected one, may pass (ClusterUnreachable).
 */
export function kubeFailure(err: KubeError): ApplicationFailure {
  if (err.kind === 'unknown-context' || err.kind === 'forbidden') return portError(ErrorTypes.ClusterConfig, err.message);
  return portError(ErrorTypes.ClusterUnreachable, err.message);
}

const statusOf = (err: unknown): number | undefined => (err as { code?: unknown })?.code as number | undefined;
/** Whether the API server answered with this HTTP status (client-node's ApiException carries it as `code`). */
export const isHttp = (err: unknown, code: number) => statusOf(err) === code;

/** The worker's kubeconfig: KUBECONFIG or ~/.kube/config (the in-cluster config when the worker runs in a pod). */
export function defaultKubeConfig(env: NodeJS.ProcessEnv = process.env): K8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  // Read KUBECONFIG here rather than inside the library: the caller's environment is the one that counts.
  const files = (env.KUBECONFIG ?? '').split(':').filter(Boolean);
  if (files.length === 1) kc.loadFromFile(files[0]);
  else kc.loadFromDefault();
  return kc;
}

export class KubeCluster implements Cluster {
  /** A cluster client for one kubeconfig file (the local stack's, a test's) rather than the process's KUBECONFIG. */
  static forKubeconfig(file: string): KubeCluster {
    return new KubeCluster(() => defaultKubeConfig({ KUBECONFIG: file }));
  }

  private readonly configs = new Map<string, K8s.KubeConfig>();

  constructor(private readonly load: () => K8s.KubeConfig = defaultKubeConfig) {}

  contexts(): string[] {
    return this.load().getContexts().map((c) => c.name);
  }

  private config(context: string): K8s.KubeConfig {
    let kc = this.configs.get(context);
    if (!kc) {
      kc = this.load();
      const known = kc.getContexts().map((c) => c.name);
      if (!known.includes(context)) {
        throw new KubeError(`kube context "${context}" is not in the kubeconfig (${process.env.KUBECONFIG ? `KUBECONFIG=${process.env.KUBECONFIG}` : '~/.kube/config'}; it has: ${known.join(', ') || 'none'})`, 'unknown-context');
      }
      kc.setCurrentContext(context);
      this.configs.set(context, kc);
    }
    return kc;
  }

  /** A typed API client for one context (other Kubernetes adapters build on it). */
  api<T extends K8s.ApiType>(context: string, api: new (config: K8s.Configuration) => T): T {
    return this.config(context).makeApiClient(api);
  }

  /** Network and auth failures become named errors; everything else passes through. */
  async call<T>(target: KubeTarget, what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof KubeError) throw err;
      const code = statusOf(err);
      if (code === 401 || code === 403) throw new KubeError(`${what} in ${target.context}/${target.namespace}: forbidden (${code})`, 'forbidden');
      if (typeof code !== 'number') throw new KubeError(`${what}: cluster ${target.context} unreachable: ${(err as Error).message}`, 'unreachable');
      throw err;
    }
  }

  async ping(target: KubeTarget): Promise<void> {
    await this.call(target, 'version', () => this.api(target.context, k8s.VersionApi).getCode());
  }

  async ensureNamespace(target: KubeTarget): Promise<void> {
    const core = this.api(target.context, k8s.CoreV1Api);
    await this.call(target, 'create namespace', async () => {
      try {
        await core.readNamespace({ name: target.namespace });
      } catch (err) {
        if (!isHttp(err, 404)) throw err;
        await core.createNamespace({ body: { metadata: { name: target.namespace } } }).catch((e) => {
          if (!isHttp(e, 409)) throw e;
        });
      }
    });
  }

  async rollout(target: KubeTarget, deployment: string): Promise<RolloutState> {
    const apps = this.api(target.context, k8s.AppsV1Api);
    return this.call(target, `read deployment ${deployment}`, async () => {
      let d: K8s.V1Deployment;
      try {
        d = await apps.readNamespacedDeployment({ name: deployment, namespace: target.namespace });
      } catch (err) {
        if (isHttp(err, 404)) return { exists: false, done: false, replicas: 0, updated: 0, ready: 0, available: 0, warnings: [] };
        throw err;
      }
      const replicas = d.spec?.replicas ?? 1;
      const s = d.status ?? {};
      const updated = s.updatedReplicas ?? 0;
      const available = s.availableReplicas ?? 0;
      const progressing = s.conditions?.find((c) => c.type === 'Progressing');
      const failed = progressing?.status === 'False' ? `${progressing.reason}: ${progressing.message}` : undefined;
      // What `kubectl rollout status` checks: the controller saw this generation, and only new pods, all available.
      const done = (s.observedGeneration ?? 0) >= (d.metadata?.generation ?? 1) && updated === replicas && (s.replicas ?? 0) === replicas && available >= replicas;
      const warnings = done ? [] : await this.warnings(target, deployment);
      return { exists: true, done, ...(failed ? { failed } : {}), replicas, updated, ready: s.readyReplicas ?? 0, available, warnings, image: d.spec?.template.spec?.containers[0]?.image };
    });
  }

  /** Warning events of the deployment, its ReplicaSets and pods (all named `<deployment>-…`). */
  private async warnings(target: KubeTarget, deployment: string): Promise<string[]> {
    const core = this.api(target.context, k8s.CoreV1Api);
    const list = await core.listNamespacedEvent({ namespace: target.namespace, fieldSelector: 'type=Warning' });
    const time = (e: K8s.CoreV1Event) => new Date(e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp ?? 0).getTime();
    const mine = list.items
      .filter((e) => e.involvedObject.name === deployment || e.involvedObject.name?.startsWith(`${deployment}-`))
      .sort((a, b) => time(a) - time(b))
      .map((e) => `${e.reason}: ${e.message?.trim()}`);
    return [...new Set(mine)].slice(-5);
  }

  async workloads(target: KubeTarget, selector: string): Promise<WorkloadRecord[]> {
    const apps = this.api(target.context, k8s.AppsV1Api);
    const list = await this.call(target, 'list deployments', () => apps.listNamespacedDeployment({ namespace: target.namespace, labelSelector: selector }));
    return list.items.map((d) => ({
      name: d.metadata?.name ?? '',
      labels: d.metadata?.labels ?? {},
      annotations: d.metadata?.annotations ?? {},
      image: d.spec?.template.spec?.containers[0]?.image,
      ready: d.status?.readyReplicas ?? 0,
      replicas: d.spec?.replicas ?? 1,
    }));
  }

  async podImages(target: KubeTarget, deployment: string): Promise<PodContainerImage[]> {
    const apps = this.api(target.context, k8s.AppsV1Api);
    const core = this.api(target.context, k8s.CoreV1Api);
    return this.call(target, `pods of deployment ${deployment}`, async () => {
      const d = await apps.readNamespacedDeployment({ name: deployment, namespace: target.namespace });
      const labels = d.spec?.selector?.matchLabels ?? {};
      const selector = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
      // A selector of only matchExpressions would list every pod of the namespace: check none rather than the wrong ones.
      if (!selector) return [];
      const pods = await core.listNamespacedPod({ namespace: target.namespace, labelSelector: selector });
      return pods.items
        .filter((p) => !p.metadata?.deletionTimestamp)
        .flatMap((p) =>
          (['initContainers', 'containers'] as const).flatMap((list) => {
            const statuses = (list === 'containers' ? p.status?.containerStatuses : p.status?.initContainerStatuses) ?? [];
            return (p.spec?.[list] ?? []).map((c) => ({
              pod: p.metadata?.name ?? '',
              container: c.name,
              init: list === 'initContainers',
              image: c.image ?? '',
              imageID: statuses.find((s) => s.name === c.name)?.imageID ?? '',
            }));
          }),
        );
    });
  }

  async serviceEndpoints(target: KubeTarget, service: string, port: number): Promise<ServiceEndpoints> {
    const core = this.api(target.context, k8s.CoreV1Api);
    const discovery = this.api(target.context, k8s.DiscoveryV1Api);
    return this.call(target, `service ${service}`, async () => {
      let svc: K8s.V1Service;
      try {
        svc = await core.readNamespacedService({ name: service, namespace: target.namespace });
      } catch (err) {
        if (isHttp(err, 404)) return { exists: false, ports: [], ready: [], notReady: 0 };
        throw err;
      }
      // The endpoint controller labels every slice of a Service with its name (as kube-proxy selects them).
      const slices = await discovery.listNamespacedEndpointSlice({ namespace: target.namespace, labelSelector: `kubernetes.io/service-name=${service}` });
      return endpointsOf(svc, slices.items, port);
    });
  }

  async acquireLease(
    target: KubeTarget,
    name: string,
    holder: string,
    note: string,
    canTakeOver: (holder: string) => Promise<boolean> = async () => false,
  ): Promise<{ acquired: boolean; holder?: string; note?: string; since?: string }> {
    await this.ensureNamespace(target);
    const coord = this.api(target.context, k8s.CoordinationV1Api);
    const body = (resourceVersion?: string): K8s.V1Lease => ({
      metadata: { name, namespace: target.namespace, ...(resourceVersion ? { resourceVersion } : {}), labels: { 'app.kubernetes.io/managed-by': 'slipway' }, annotations: { 'slipway.dev/note': note } },
      spec: { holderIdentity: holder, acquireTime: new k8s.V1MicroTime(), renewTime: new k8s.V1MicroTime() },
    });
    return this.call(target, `lease ${name}`, async () => {
      let lease: K8s.V1Lease;
      try {
        lease = await coord.readNamespacedLease({ name, namespace: target.namespace });
      } catch (err) {
        if (!isHttp(err, 404)) throw err;
        try {
          await coord.createNamespacedLease({ namespace: target.namespace, body: body() });
          return { acquired: true };
        } catch (e) {
          if (!isHttp(e, 409)) throw e;
          lease = await coord.readNamespacedLease({ name, namespace: target.namespace });
        }
      }
      const current = lease.spec?.holderIdentity;
      if (!current || current === holder || (await canTakeOver(current))) {
        if (current === holder) return { acquired: true };
        try {
          // resourceVersion makes the take-over conditional: if someone else got there first, this is a 409.
          await coord.replaceNamespacedLease({ name, namespace: target.namespace, body: body(lease.metadata?.resourceVersion) });
          return { acquired: true };
        } catch (e) {
          if (!isHttp(e, 409)) throw e;
          lease = await coord.readNamespacedLease({ name, namespace: target.namespace });
        }
      }
      return {
        acquired: false,
        holder: lease.spec?.holderIdentity,
        note: lease.metadata?.annotations?.['slipway.dev/note'],
        since: lease.spec?.acquireTime ? new Date(lease.spec.acquireTime as unknown as string).toISOString() : undefined,
      };
    });
  }

  async releaseLease(target: KubeTarget, name: string, holder: string): Promise<boolean> {
    const coord = this.api(target.context, k8s.CoordinationV1Api);
    return this.call(target, `release lease ${name}`, async () => {
      try {
        const lease = await coord.readNamespacedLease({ name, namespace: target.namespace });
        if (lease.spec?.holderIdentity !== holder) return false;
        await coord.deleteNamespacedLease({ name, namespace: target.namespace, body: { preconditions: { resourceVersion: lease.metadata?.resourceVersion } } });
        return true;
      } catch (err) {
        if (isHttp(err, 404) || isHttp(err, 409)) return false;
        throw err;
      }
    });
  }
}
