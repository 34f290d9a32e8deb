/** Gateway API traffic: the weights of an HTTPRoute's backendRefs, rule by rule; the canary backend is `<name>-canary`. */
import type { TrafficRouter } from '../ports';
import type { TrafficDeps } from './deps';
import { routeRouter, type RouteKind, type Weighted } from './route';

interface BackendRef extends Weighted {
  name?: string;
}

export const HTTP_ROUTE: RouteKind<BackendRef> = {
  type: 'gateway-api',
  group: 'gateway.networking.k8s.io',
  version: 'v1',
  plural: 'httproutes',
  listsName: 'rules',
  backendLists: (route) => (route?.spec?.rules ?? []).map((r: any) => r.backendRefs ?? []),
  isCanary: (b, canary) => b.name === canary,
};

export const gatewayApiRouter = (plan: { route: string }, deps: TrafficDeps): TrafficRouter => routeRouter(HTTP_ROUTE, plan.route, deps);
