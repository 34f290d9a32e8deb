/**
 * What the route routers (Gateway API HTTPRoute, Istio VirtualService) share: the route is a custom object with
 * lists of weighted backends; each list's canary backends get the canary's weight and its stable ones share the
 * rest. The canary runs as many pods as the stable Deployment, since the route, not the pods, sets its share.
 */
import { heartbeat } from '../common';
import type { K8s } from '../kubernetes/client';
import { isHttp } from '../kubernetes/cluster';
import type { KubeTarget, TrafficRouter } from '../ports';
import type { CustomObjectsClient, TrafficDeps } from './deps';

/** How long a weight change waits for the canary's pods to be ready before giving up (the route is then unchanged). */
export const CANARY_READY_TIMEOUT_MS = 90_000;
const READY_POLL_MS = 500;

export interface Weighted {
  weight?: number;
}

/** One kind of route object: where it lives on the API server and where its weighted backends are. */
export interface RouteKind<B extends Weighted> {
  type: TrafficRouter['type'];
  group: string;
  version: string;
  plural: string;
  /** What the route calls its lists of backends, for the error when it has none. */
  listsName: string;
  backendLists(route: any): B[][];
  isCanary(backend: B, canary: string): boolean;
}

/**
 * The weights of one list of backends, in its order: `weight` for each canary backend, and the rest split evenly
 * (rounded down) between the stable ones. Undefined when the list lacks a canary or a stable backend.
 */
export function splitWeights<B>(backends: B[], isCanary: (b: B) => boolean, weight: number): number[] | undefined {
  const stables = backends.filter((b) => !isCanary(b)).length;
  if (stables === 0 || stables === backends.length) return undefined;
  return backends.map((b) => (isCanary(b) ? weight : Math.floor((100 - weight) / stables)));
}


export function routeRouter<B extends Weighted>(kind: RouteKind<B>, name: string, deps: TrafficDeps): TrafficRouter {
  const ref = { group: kind.group, version: kind.version, plural: kind.plural, name };
  const what = `${kind.plural}/${name}`;

  /** Why `route`'s lists cannot be weighed: none, or none with both a stable and a canary backend. */
  function listsProblem(route: any): string | undefined {
    const lists = kind.backendLists(route);
    if (!lists.length) return `${what} has no ${kind.listsName} to weigh`;
    if (!lists.some((backends) => splitWeights(backends, (b) => kind.isCanary(b, deps.canary), 50))) return `${what} needs a backend for ${deps.canary} and one for the stable service`;
    return undefined;
  }

  /** Rewrites every list's weights and writes the route back whole (a replace: a concurrent edit fails with 409). */
  async function weigh(target: KubeTarget, weight: number): Promise<void> {
    const api = deps.customObjects(target.context);
    const route: any = await api.getNamespacedCustomObject({ ...ref, namespace: target.namespace });
    const problem = listsProblem(route);
    if (problem) throw new Error(problem);
    // Only lists with both a stable and a canary backend are weighed: a header-match rule that always sends to the
    // canary (or to stable) keeps its backends as written.
    for (const backends of kind.backendLists(route)) {
      const weights = splitWeights(backends, (b) => kind.isCanary(b, deps.canary), weight);
      if (weights) backends.forEach((b, i) => (b.weight = weights[i]));
    }
    await api.replaceNamespacedCustomObject({ ...ref, namespace: target.namespace, body: route });
  }

  /**
   * Waits until the canary Service's EndpointSlices list `replicas` ready endpoints: a router obeys a weight at once,
   * and a backend without ready endpoints answers its share with errors (Traefik: 503) that the canary never served.
   * EndpointSlices are read through the generic objects API the router already has (discovery.k8s.io/v1); a client
   * without list (a test double) or a canary without a Service (no slices at all) has nothing to wait for.
   */
  async function canaryReady(target: KubeTarget, replicas: number): Promise<void> {
    const api = deps.customObjects(target.context) as CustomObjectsClient & Partial<Pick<K8s.CustomObjectsApi, 'listNamespacedCustomObject'>>;
    if (!api.listNamespacedCustomObject) return;
    const deadline = Date.now() + CANARY_READY_TIMEOUT_MS;
    for (;;) {
      const list: any = await api.listNamespacedCustomObject({ group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', namespace: target.namespace, labelSelector: `kubernetes.io/service-name=${deps.canary}` });
      const slices: any[] = list?.items ?? [];
      if (!slices.length) return;
      // A missing `ready` condition means ready (EndpointSlice API); terminating endpoints are not ready.
      const ready = slices.flatMap((s) => s.endpoints ?? []).filter((e: any) => e.conditions?.ready !== false).length;
      if (ready >= replicas) return;
      if (Date.now() >= deadline) throw new Error(`${deps.canary} has ${ready} of ${replicas} ready endpoints after ${CANARY_READY_TIMEOUT_MS / 1000} s: ${what} was not changed`);
      heartbeat({ waitingFor: deps.canary, ready, of: replicas });
      await new Promise((r) => setTimeout(r, READY_POLL_MS));
    }
  }

  return {
    type: kind.type,
    weightProblem: () => undefined, // a route carries any percentage
    async routeProblem(target) {
      let route: any;
      try {
        route = await deps.customObjects(target.context).getNamespacedCustomObject({ ...ref, namespace: target.namespace });
      } catch (err) {
        // A stable release installed without its route (e.g. before the chart's route was enabled) cannot be canaried.
        if (isHttp(err, 404)) return `${what} does not exist in ${target.namespace}: the stable release must create it (the sample chart: route.enabled)`;
        throw err;
      }
      return listsProblem(route);
    },
    async setWeight(target, weight, stableReplicas) {
      // Pods first, then traffic: the canary backend has ready pods before the route sends it anything.
      const canaryReplicas = weight <= 0 ? 0 : Math.max(1, stableReplicas);
      if (canaryReplicas === 0) {
        // Traffic first, then pods: the route stops sending to the canary before its pods go.
        await weigh(target, weight);
        await deps.scale(target, 0);
        return { weight, canaryReplicas };
      }
      await deps.scale(target, canaryReplicas);
      await canaryReady(target, canaryReplicas);
      await weigh(target, weight);
      return { weight, canaryReplicas };
    },
    async reset(target) {
      // A route (or its CRD) already gone sends nothing to the canary.
      await weigh(target, 0).catch((err) => {
        if (!isHttp(err, 404)) throw err;
      });
    },
  };
}
