/**
 * Istio traffic: the weights of a VirtualService's http routes; a destination is the canary when its host is
 * `<name>-canary` or its subset is `canary` (a DestinationRule subset of the shared host).
 */
import type { TrafficRouter } from '../ports';
import type { TrafficDeps } from './deps';
import { routeRouter, type RouteKind, type Weighted } from './route';

interface RouteDestination extends Weighted {
  destination?: { host?: string; subset?: string };
}

export const VIRTUAL_SERVICE: RouteKind<RouteDestination> = {
  type: 'istio',
  group: 'networking.istio.io',
  version: 'v1',
  plural: 'virtualservices',
  listsName: 'http routes',
  backendLists: (vs) => (vs?.spec?.http ?? []).map((h: any) => h.route ?? []),
  isCanary: (r, canary) => r.destination?.host === canary || r.destination?.subset === 'canary',
};

export const istioRouter = (plan: { virtualService: string }, deps: TrafficDeps): TrafficRouter => routeRouter(VIRTUAL_SERVICE, plan.virtualService, deps);
