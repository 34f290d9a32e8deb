/**
 * The canary's default metrics (issue #12): what a canary is judged on when `canary.queries` and `canary.judge` are
 * omitted — the router's own per-service metrics, so a service needs no instrumentation of its own. Plain data (no
 * zod): model/config.ts fills it in, and the docs, tests and demo read it from here.
 *
 * The router is Traefik (the local stack's, or any Traefik v3 with its Kubernetes Gateway API provider and Prometheus
 * metrics with `addServicesLabels`). Traefik names a backendRef's service `<namespace>-<Service>-http-<port>` and its
 * metrics add the provider, so `service="<ns>-<svc>-http-80@kubernetesgateway"` (Traefik v3.6
 * pkg/provider/kubernetes/gateway/httproute.go; seen on the stack's Traefik).
 */

/** The default metrics' names: the keys of `canary.queries` and the judge's metric names. */
export const ROUTER_METRICS = { errors: 'error-ratio', latency: 'p99-latency' } as const;

/**
 * The traffic routers the default metrics exist for. Replica-ratio canaries have no router in front of them; an
 * Istio mesh has its own metrics (istio_requests_total), which no Envoy here could check.
 */
export const ROUTER_METRICS_TRAFFIC = ['gateway-api'] as const;

/**
 * One track's series among Traefik's services: `$backend` is the track's Kubernetes Service (the route's stable or
 * canary backend), any port. A regex, since the port is the route's: `-http-<digits>` cannot match the canary's
 * `-canary-http-80` when the baseline's is asked for, so the tracks never mix.
 */
export const TRAEFIK_SERVICE_SELECTOR = 'service=~"$namespace-$backend-http-[0-9]+@kubernetesgateway"';

/**
 * The rate window for a Prometheus step: four steps, at least 5 s. Each point then averages a few scrapes (the
 * router must be scraped at least twice per window — every 2 × stepSeconds — or the points are empty and
 * error-ratio fails for want of data) while staying short enough that a 3 s interval of a test sees its own traffic.
 */
export const rateWindowSeconds = (stepSeconds: number): number => Math.max(5, 4 * stepSeconds);

/** `canary.queries` of the default: error ratio (5xx / all) and p99 latency of each track's backend, through Traefik. */
export function routerQueries(stepSeconds: number): Record<string, string> {
  const w = `${rateWindowSeconds(stepSeconds)}s`;
  const sel = TRAEFIK_SERVICE_SELECTOR;
  return {
    // No 5xx at all is an empty vector, not 0: `or vector(0)`. No requests at all is 0/0 = NaN, which the judge
    // removes (and mustHaveData then fails): a canary that served nothing was not shown to be healthy.
    [ROUTER_METRICS.errors]: `(sum(rate(traefik_service_requests_total{${sel},code=~"5.."}[${w}])) or vector(0)) / sum(rate(traefik_service_requests_total{${sel}}[${w}]))`,
    [ROUTER_METRICS.latency]: `histogram_quantile(0.99, sum by (le) (rate(traefik_service_request_duration_seconds_bucket{${sel}}[${w}])))`,
  };
}

/**
 * `canary.judge` of the default (its input form; zod fills in the rest). Errors are critical: any significant rise
 * (and at least 1.2 × the baseline's ratio, or any rise from a baseline without errors) fails the canary at once. A
 * p99 at least 1.2 × the baseline's is High; with both groups weighted equally that alone scores 50, under the
 * default marginal threshold (75): the canary fails, on the latency metric.
 */
export const ROUTER_JUDGE = {
  metrics: [
    { name: ROUTER_METRICS.errors, groups: ['errors'], direction: 'increase', critical: true, mustHaveData: true, effectSize: { allowedIncrease: 1.2 } },
    { name: ROUTER_METRICS.latency, groups: ['latency'], direction: 'increase', effectSize: { allowedIncrease: 1.2 } },
  ],
  groupWeights: { errors: 50, latency: 50 },
} as const;
