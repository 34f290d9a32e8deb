/**
 * Canary activities: start the canary beside the stable Deployment, move traffic, measure both tracks in
 * Prometheus, remove the canary. Judging is the workflow's (workflows/canary/judge.ts, pure), so every score and
 * decision is recorded in the history next to the measurements it was made from.
 */
import { ErrorTypes } from '../model/errors';
import type { CanaryMeasurement, MeasureCanaryInput, RemoveCanaryInput, SetCanaryWeightInput, StartCanaryInput, StartCanaryResult } from '../model/types';
import type { SlipwayActivities } from './contract';
import { heartbeat } from './common';
import { guarded } from './deploy';
import { portError } from './errors';
import { CanaryPlanError, canaryName, type KubeCanary } from './kubernetes/canary';
import { MetricQueryError, trackQuery, type QueryScope } from './metrics/prometheus';
import type { MetricProvider } from './ports';

/**
 * The Kubernetes Services that carry each track's traffic, for `$backend`: the canary's own Service (`<service>-canary`,
 * which startCanary creates and the route's canary backend must name) and the stable pods' Service, `<service>-stable`
 * (the route's other backend, as the sample chart names it).
 */
export function queryScope(namespace: string, service: string): QueryScope {
  return { namespace, service, backends: { baseline: `${service}-stable`, canary: canaryName(service) } };
}

export interface CanaryDeps {
  canaries: KubeCanary;
  /** The metric provider for a Prometheus URL (from slipway.yaml; no credentials in it). */
  metrics: (url: string) => MetricProvider;
}

/** As `guarded`, and a plan the Deployment cannot carry out is invalid input: no retry changes its replica count. */
async function planned<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await guarded(fn);
  } catch (err) {
    if (err instanceof CanaryPlanError) throw portError(ErrorTypes.InvalidInput, err.message);
    throw err;
  }
}

export function createCanaryActivities(deps: CanaryDeps): Pick<SlipwayActivities, 'startCanary' | 'setCanaryWeight' | 'measureCanary' | 'removeCanary'> {
  return {
    async startCanary(input: StartCanaryInput): Promise<StartCanaryResult> {
      const marks = {
        'slipway.dev/release': input.releaseId,
        'slipway.dev/environment': input.environment,
        'slipway.dev/digest': input.image.slice(input.image.indexOf('@') + 1),
      };
      const plan = input.traffic ? { traffic: input.traffic, weights: input.weights ?? [] } : undefined;
      return planned(() => deps.canaries.start(input.target, input.service, input.image, marks, plan, input.noStable ?? 'fail'));
    },

    async setCanaryWeight(input: SetCanaryWeightInput) {
      return planned(() => deps.canaries.setWeight(input.target, input.service, input.traffic, input.weight, input.stableReplicas));
    },

    /** The range's points only: the workflow asks for each interval's new ones and keeps the samples itself. */
    async measureCanary(input: MeasureCanaryInput): Promise<CanaryMeasurement> {
      const provider = deps.metrics(input.prometheusUrl);
      const range = { start: new Date(input.start), end: new Date(input.end), stepSeconds: input.stepSeconds };
      const scope = input.namespace && input.service ? queryScope(input.namespace, input.service) : undefined;
      const metrics: CanaryMeasurement['metrics'] = [];
      for (const q of input.queries) {
        heartbeat({ measuring: q.name });
        try {
          const [baseline, canary] = await Promise.all([
            provider.queryRange({ ...range, query: trackQuery(q.query, 'baseline', scope) }),
            provider.queryRange({ ...range, query: trackQuery(q.query, 'canary', scope) }),
          ]);
          metrics.push({ name: q.name, baseline, canary });
        } catch (err) {
          // A query Prometheus rejects will not improve on retry (MetricQuery); an unreachable or 5xx one may.
          if (err instanceof MetricQueryError) throw portError(err.type, `${q.name}: ${err.message}`);
          throw err;
        }
      }
      return { metrics };
    },

    async removeCanary(input: RemoveCanaryInput) {
      return guarded(async () => {
        await deps.canaries.remove(input.target, input.service, input.traffic);
        return { removed: true };
      });
    },
  };
}
