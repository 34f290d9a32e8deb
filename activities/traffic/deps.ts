/** What the traffic routers are given by the canary that owns them (activities/kubernetes/canary.ts). */
import type { K8s } from '../kubernetes/client';
import type { KubeTarget } from '../ports';

/** The part of the custom objects API a route router uses: read the route, write it back whole. */
export type CustomObjectsClient = Pick<K8s.CustomObjectsApi, 'getNamespacedCustomObject' | 'replaceNamespacedCustomObject'>;

export interface TrafficDeps {
  /** The canary Deployment's and Service's name, `<name>-canary`: a route's canary backend. */
  canary: string;
  /** Scales the canary Deployment (every router runs its pods; only the replica ratio sets traffic with them). */
  scale(target: KubeTarget, replicas: number): Promise<void>;
  /** The custom objects API of a kube context (HTTPRoutes, VirtualServices). */
  customObjects(context: string): CustomObjectsClient;
}
