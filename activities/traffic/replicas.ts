/**
 * Replica-ratio traffic: stable and canary pods sit behind the one shared Service, so the canary's share is its
 * share of the pods. The stable Deployment keeps its size and the canary gets ceil(stable × w / (100 − w)) pods;
 * the weight in effect is the ratio those pods make, which is approximate.
 */
import { canaryReplicasFor, replicaWeight, replicaWeightProblem } from '../../model/rules';
import type { TrafficRouter } from '../ports';
import type { TrafficDeps } from './deps';

export function replicaRouter(deps: Pick<TrafficDeps, 'scale'>): TrafficRouter {
  return {
    type: 'replicas',
    // A canary runs at most as many pods as the stable Deployment, so some weights cannot be expressed.
    weightProblem: (weight, stableReplicas) => replicaWeightProblem(weight, stableReplicas),
    routeProblem: async () => undefined, // the shared Service is the route: nothing to find
    async setWeight(target, weight, stableReplicas) {
      const canaryReplicas = canaryReplicasFor(weight, stableReplicas);
      await deps.scale(target, canaryReplicas);
      return { weight: replicaWeight(canaryReplicas, stableReplicas), canaryReplicas };
    },
    // Nothing routes but the pods, and the canary Deployment is deleted right after.
    reset: async () => undefined,
  };
}
