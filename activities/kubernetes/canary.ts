/**
 * Canaries on Kubernetes, the way Flagger does it: the stable Deployment (Helm's) stays as it is; a copy named
 * `<name>-canary` runs the new image with `track: canary` pods, and its own Service `<name>-canary`. Traffic moves by
 * the plan's router (activities/traffic/): replica ratio behind the shared Service, Gateway API `HTTPRoute` backend
 * weights, or Istio `VirtualService` route weights.
 */
import { k8s, type K8s } from './client';
import type { KubeCluster } from './cluster';
import type { KubeTarget, TrafficRouter } from '../ports';
import { type TrafficPlan } from '../../model/identifiers';
import { trafficRouterFor } from '../traffic';


const isHttp = (err: unknown, code: number) => (err as { code?: number })?.code === code;
export const canaryName = (stable: string): string => `${stable}-canary`;

/** A canary plan the running stable Deployment cannot carry out (a weight its replica count cannot express). */
export class CanaryPlanError extends Error {
  override name = 'CanaryPlanError';
}

/** The weights a canary will be asked for, checked by its router against the stable replica count; throws before any change. */
export function checkWeights(router: TrafficRouter, weights: { step?: number; weight: number }[], stable: string, stableReplicas: number): void {
  const problems = weights.flatMap(({ step, weight }) => {
    const p = router.weightProblem(weight, stableReplicas);
    return p ? [`${step === undefined ? 'canary setWeight' : `canary.steps.${step}.setWeight`}: ${p}`] : [];
  });
  if (problems.length) throw new CanaryPlanError(`the canary of ${stable} cannot start (the stable Deployment runs ${stableReplicas} replica${stableReplicas === 1 ? '' : 's'}):\n${problems.join('\n')}`);
}

export class KubeCanary {
  constructor(private readonly cluster: KubeCluster) {}

  private apps(t: KubeTarget) {
    return this.cluster.api(t.context, k8s.AppsV1Api);
  }

  /** The plan's router for the canary of `stable`. */
  private router(traffic: TrafficPlan, stable: string): TrafficRouter {
    const canary = canaryName(stable);
    return trafficRouterFor(traffic, {
      canary,
      scale: (t, replicas) => this.scale(t, canary, replicas),
      customObjects: (context) => this.cluster.api(context, k8s.CustomObjectsApi),
    });
  }

  /**
   * Creates (or updates, on a retry) the canary Deployment and Service from the stable ones; 0 replicas to start.
   * `plan` (the traffic and the steps' weights) is checked against the stable Deployment first: a weight its replica
   * count cannot express is refused before anything is created or patched.
   */
  async start(
    t: KubeTarget,
    stable: string,
    image: string,
    marks: Record<string, string>,
    plan?: { traffic: TrafficPlan; weights: { step?: number; weight: number }[] },
    noStable: 'fail' | 'absent' = 'fail',
  ): Promise<{ canary: string; absent?: boolean; stableImage?: string; stableReplicas: number }> {
    const d = await this.cluster.call(t, `read ${stable}`, () =>
      this.apps(t)
        .readNamespacedDeployment({ name: stable, namespace: t.namespace })
        .catch((err) => {
          if (noStable === 'absent' && isHttp(err, 404)) return undefined;
          throw err;
        }),
    );
    if (!d) return { canary: '', absent: true, stableReplicas: 0 };
    if (plan) {
      const router = this.router(plan.traffic, stable);
      checkWeights(router, plan.weights, stable, d.spec?.replicas ?? 1);
      const problem = await this.cluster.call(t, `read the route of ${stable}`, () => router.routeProblem(t));
      if (problem) throw new CanaryPlanError(`the canary of ${stable} cannot start: ${problem}`);
    }
    return this.cluster.call(t, `start canary of ${stable}`, async () => {
      const apps = this.apps(t);
      const name = canaryName(stable);
      // Neither Helm nor Flux owns the copy: drop their labels (Flux's would claim it for its Kustomization) and say who manages it.
      const strip = (labels: Record<string, string> = {}) => ({
        ...Object.fromEntries(Object.entries(labels).filter(([k]) => k !== 'helm.sh/chart' && !k.startsWith('kustomize.toolkit.fluxcd.io/'))),
        'app.kubernetes.io/managed-by': 'slipway',
        track: 'canary',
      });
      const template = d.spec!.template;
      const body: K8s.V1Deployment = {
        metadata: { name, namespace: t.namespace, labels: strip(d.metadata?.labels), annotations: marks },
        spec: {
          ...d.spec!,
          replicas: 0,
          selector: { matchLabels: { ...(d.spec!.selector.matchLabels ?? {}), track: 'canary' } },
          template: {
            metadata: { labels: { ...(template.metadata?.labels ?? {}), track: 'canary' }, annotations: { ...(template.metadata?.annotations ?? {}), ...marks } },
            spec: { ...template.spec!, containers: template.spec!.containers.map((c, i) => (i === 0 ? { ...c, image } : c)) },
          },
        },
      };
      try {
        await apps.createNamespacedDeployment({ namespace: t.namespace, body });
      } catch (err) {
        if (!isHttp(err, 409)) throw err;
        const existing = await apps.readNamespacedDeployment({ name, namespace: t.namespace });
        await apps.replaceNamespacedDeployment({ name, namespace: t.namespace, body: { ...body, metadata: { ...body.metadata, resourceVersion: existing.metadata?.resourceVersion }, spec: { ...body.spec!, replicas: existing.spec?.replicas } } });
      }
      await this.canaryService(t, stable);
      return { canary: name, stableImage: template.spec!.containers[0]?.image, stableReplicas: d.spec?.replicas ?? 1 };
    });
  }

  /** `<name>-canary`: the stable Service's ports, selecting canary pods only (a router's canary backend). */
  private async canaryService(t: KubeTarget, stable: string): Promise<void> {
    const core = this.cluster.api(t.context, k8s.CoreV1Api);
    let svc: K8s.V1Service;
    try {
      svc = await core.readNamespacedService({ name: stable, namespace: t.namespace });
    } catch (err) {
      if (isHttp(err, 404)) return; // no Service: replica-ratio canaries need none of their own
      throw err;
    }
    const body: K8s.V1Service = {
      metadata: { name: canaryName(stable), namespace: t.namespace, labels: { 'app.kubernetes.io/managed-by': 'slipway', track: 'canary' } },
      spec: { type: 'ClusterIP', selector: { ...(svc.spec?.selector ?? {}), track: 'canary' }, ports: svc.spec?.ports?.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: p.protocol })) },
    };
    await core.createNamespacedService({ namespace: t.namespace, body }).catch((err) => {
      if (!isHttp(err, 409)) throw err;
    });
  }

  /**
   * Sends `weight` % of traffic to the canary; returns the weight actually in effect (with replicas, the ratio the
   * canary's pods make, approximate) and the canary's replicas.
   */
  async setWeight(t: KubeTarget, stable: string, traffic: TrafficPlan, weight: number, stableReplicas: number): Promise<{ weight: number; canaryReplicas: number }> {
    const router = this.router(traffic, stable);
    // start() refused such a plan already; this guards a canary started before that check existed.
    checkWeights(router, [{ weight }], stable, stableReplicas);
    return this.cluster.call(t, `set canary weight of ${stable}`, () => router.setWeight(t, weight, stableReplicas));
  }

  private async scale(t: KubeTarget, name: string, replicas: number): Promise<void> {
    const apps = this.apps(t);
    const d = await apps.readNamespacedDeployment({ name, namespace: t.namespace });
    if (d.spec?.replicas === replicas) return;
    await apps.replaceNamespacedDeployment({ name, namespace: t.namespace, body: { ...d, spec: { ...d.spec!, replicas } } });
  }

  /** Traffic back to stable and the canary gone; idempotent. */
  async remove(t: KubeTarget, stable: string, traffic: TrafficPlan): Promise<void> {
    await this.cluster.call(t, `remove canary of ${stable}`, async () => {
      await this.router(traffic, stable).reset(t);
      const ignore404 = (err: unknown) => {
        if (!isHttp(err, 404)) throw err;
      };
      await this.apps(t).deleteNamespacedDeployment({ name: canaryName(stable), namespace: t.namespace }).catch(ignore404);
      await this.cluster.api(t.context, k8s.CoreV1Api).deleteNamespacedService({ name: canaryName(stable), namespace: t.namespace }).catch(ignore404);
    });
  }
}
