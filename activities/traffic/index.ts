/** The one place a canary's traffic plan (slipway.yaml's `canary.traffic`) picks its router. */
import type { TrafficPlan } from '../../model/identifiers';
import type { TrafficRouter } from '../ports';
import type { TrafficDeps } from './deps';
import { gatewayApiRouter } from './gateway-api';
import { istioRouter } from './istio';
import { replicaRouter } from './replicas';

export type { CustomObjectsClient, TrafficDeps } from './deps';

export function trafficRouterFor(plan: TrafficPlan, deps: TrafficDeps): TrafficRouter {
  switch (plan.type) {
    case 'replicas':
      return replicaRouter(deps);
    case 'gateway-api':
      return gatewayApiRouter(plan, deps);
    case 'istio':
      return istioRouter(plan, deps);
    default: {
      // A router added to TrafficPlan without an adapter fails to compile here.
      const unknown: never = plan;
      throw new Error(`no traffic router for ${JSON.stringify(unknown)}`);
    }
  }
}
