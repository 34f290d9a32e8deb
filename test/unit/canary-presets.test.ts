/**
 * The canary's default (router) metrics and the query variables (issue #12): `$namespace`, `$service` and `$backend`
 * filled in by the measure activity, and slipway.yaml's canary section falling back to Traefik's per-service metrics.
 */
import { createCanaryActivities, queryScope } from '../../activities/canary';
import type { KubeCanary } from '../../activities/kubernetes/canary';
import { MetricQueryError, trackQuery } from '../../activities/metrics/promql';
import type { MetricProvider } from '../../activities/ports';
import { ROUTER_JUDGE, ROUTER_METRICS, rateWindowSeconds, routerQueries } from '../../model/canary-presets';
import { canaryConfigSchema } from '../../model/config';
import { parseConfig, planRelease } from '../../model/plan';

const scope = queryScope('shop-prod', 'delivery');

describe('query variables', () => {
  test('each track gets its own backend Service; namespace, service and track are filled in', () => {
    const q = 'sum(rate(x{service=~"$namespace-$backend-http-[0-9]+@kubernetesgateway",app="$service",track="$track"}[5s]))';
    expect(trackQuery(q, 'baseline', scope)).toBe('sum(rate(x{service=~"shop-prod-delivery-stable-http-[0-9]+@kubernetesgateway",app="delivery",track="baseline"}[5s]))');
    expect(trackQuery(q, 'canary', scope)).toBe('sum(rate(x{service=~"shop-prod-delivery-canary-http-[0-9]+@kubernetesgateway",app="delivery",track="canary"}[5s]))');
  });

  test('other dollars are PromQL: a regex anchor and a longer word stay as written', () => {
    expect(trackQuery('x{code=~"5..$",a="$services",b="$track"}', 'canary', scope)).toBe('x{code=~"5..$",a="$services",b="canary"}');
  });

  test('only $track is needed from a run that passed no namespace and service; the others are refused, not sent', () => {
    expect(trackQuery('x{track="$track"}', 'baseline')).toBe('x{track="baseline"}');
    expect(() => trackQuery('x{ns="$namespace"}', 'baseline')).toThrow(MetricQueryError);
    expect(() => trackQuery('x{ns="$namespace"}', 'baseline')).toThrow(/uses \$namespace, but this measurement has no namespace and service/);
  });

  test('a name that is not a DNS label never reaches PromQL (it could close the string or widen the regex)', () => {
    for (const bad of ['a"}or{x="', 'a.*', 'A', 'a\\b', '']) {
      expect(() => trackQuery('x{ns="$namespace"}', 'canary', { ...scope, namespace: bad })).toThrow(/is not a DNS label/);
    }
    expect(() => trackQuery('x{b="$backend"}', 'canary', { ...scope, backends: { baseline: 'ok', canary: 'x"' } })).toThrow(/\$backend "x"" is not a DNS label/);
  });

  test('the measure activity asks Prometheus for each track with the release\'s names', async () => {
    const asked: string[] = [];
    const provider: MetricProvider = { queryRange: async (r) => (asked.push(r.query), [1, 2]) };
    const acts = createCanaryActivities({ canaries: undefined as unknown as KubeCanary, metrics: () => provider });
    const queries = Object.entries(routerQueries(1)).map(([name, query]) => ({ name, query }));
    const r = await acts.measureCanary({ prometheusUrl: 'http://p', queries, namespace: 'shop-prod', service: 'delivery', start: new Date(0).toISOString(), end: new Date(3000).toISOString(), stepSeconds: 1 });
    expect(r.metrics.map((m) => m.name)).toEqual([ROUTER_METRICS.errors, ROUTER_METRICS.latency]);
    expect(asked).toEqual([
      '(sum(rate(traefik_service_requests_total{service=~"shop-prod-delivery-stable-http-[0-9]+@kubernetesgateway",code=~"5.."}[5s])) or vector(0)) / sum(rate(traefik_service_requests_total{service=~"shop-prod-delivery-stable-http-[0-9]+@kubernetesgateway"}[5s]))',
      '(sum(rate(traefik_service_requests_total{service=~"shop-prod-delivery-canary-http-[0-9]+@kubernetesgateway",code=~"5.."}[5s])) or vector(0)) / sum(rate(traefik_service_requests_total{service=~"shop-prod-delivery-canary-http-[0-9]+@kubernetesgateway"}[5s]))',
      'histogram_quantile(0.99, sum by (le) (rate(traefik_service_request_duration_seconds_bucket{service=~"shop-prod-delivery-stable-http-[0-9]+@kubernetesgateway"}[5s])))',
      'histogram_quantile(0.99, sum by (le) (rate(traefik_service_request_duration_seconds_bucket{service=~"shop-prod-delivery-canary-http-[0-9]+@kubernetesgateway"}[5s])))',
    ]);
  });

  test('the baseline\'s selector cannot match the canary\'s Traefik service, nor the other way round', () => {
    const sel = (track: 'baseline' | 'canary') => new RegExp(`^${/service=~"([^"]+)"/.exec(trackQuery(routerQueries(1)[ROUTER_METRICS.errors], track, scope))![1]}$`);
    const stable = 'shop-prod-delivery-stable-http-80@kubernetesgateway';
    const canary = 'shop-prod-delivery-canary-http-80@kubernetesgateway';
    expect([sel('baseline').test(stable), sel('baseline').test(canary)]).toEqual([true, false]);
    expect([sel('canary').test(canary), sel('canary').test(stable)]).toEqual([true, false]);
  });
});

describe('the default (router) metrics in slipway.yaml', () => {
  const base = { prometheus: { url: 'http://127.0.0.1:9090', stepSeconds: 1 }, steps: [{ setWeight: 50 }, { analysis: { duration: '9s', interval: '3s' } }] };
  const gateway = { ...base, traffic: { type: 'gateway-api', route: 'delivery' } };
  const issues = (c: object) => canaryConfigSchema.safeParse(c).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);

  test('gateway-api traffic without queries and judge is judged on Traefik\'s error ratio and p99 latency', () => {
    const c = canaryConfigSchema.parse(gateway);
    expect(c.queries).toEqual(routerQueries(1));
    expect(Object.keys(c.queries)).toEqual(['error-ratio', 'p99-latency']);
    expect(c.judge.metrics.map((m) => [m.name, m.direction, m.critical, m.mustHaveData])).toEqual([
      ['error-ratio', 'increase', true, true],
      ['p99-latency', 'increase', false, false],
    ]);
    expect(c.judge.metrics[1].effectSize).toMatchObject({ measure: 'meanRatio', allowedIncrease: 1.2 });
    expect(c.judge).toMatchObject({ groupWeights: ROUTER_JUDGE.groupWeights, thresholds: { pass: 95, marginal: 75 }, judge: { confidenceLevel: 0.98, tolerance: 0.25 } });
  });

  test('the rate window follows the Prometheus step: four steps, at least 5 s', () => {
    expect([1, 2, 10, 30].map(rateWindowSeconds)).toEqual([5, 8, 40, 120]);
    expect(canaryConfigSchema.parse({ ...gateway, prometheus: { url: 'http://p:9090' } }).queries['p99-latency']).toContain('[40s]');
  });

  test('a judge alone keeps the default queries when it names their metrics', () => {
    const judge = { metrics: [{ name: 'error-ratio', groups: ['errors'], direction: 'increase', critical: true }] };
    expect(canaryConfigSchema.parse({ ...gateway, judge }).queries).toEqual(routerQueries(1));
    expect(issues({ ...gateway, judge: { metrics: [{ name: 'errors', groups: ['e'] }] } })).toEqual(['judge.metrics.0.name: has no default query (canary.queries omitted: the default metrics are error-ratio, p99-latency)']);
  });

  test.each([
    ['replicas', { type: 'replicas' }],
    ['istio', { type: 'istio', virtualService: 'delivery' }],
  ])('without queries, %s traffic is refused with the field and the rule named', (type, traffic) => {
    expect(issues({ ...base, traffic })).toEqual([`queries: is required with traffic.type ${type}: the default metrics are the router's (Traefik's per-service metrics), which only traffic.type gateway-api has`]);
  });

  test('the traffic type defaults to replicas, so a section with neither traffic nor queries is refused too', () => {
    expect(issues(base)).toEqual([expect.stringMatching(/^queries: is required with traffic\.type replicas/)]);
  });

  test('queries without a judge are refused (the default judge knows only the default metrics)', () => {
    expect(issues({ ...gateway, queries: { errors: 'x{track="$track"}' } })).toEqual(['judge: is required with canary.queries (the default judge goes with the default queries only)']);
  });

  test('a query may tell the tracks apart by $backend instead of $track', () => {
    const judge = { metrics: [{ name: 'e', groups: ['e'] }] };
    expect(issues({ ...gateway, judge, queries: { e: 'x{service="$backend"}' } })).toBeUndefined();
    expect(issues({ ...gateway, judge, queries: { e: 'x{service="$service"}' } })).toEqual(['queries.e: must use $track or $backend to tell baseline from canary']);
  });

  test('in a whole slipway.yaml the error names the path, and the plan carries the filled-in defaults', () => {
    const yaml = (traffic: string) => `
registries: { dev: { type: oci, url: "127.0.0.1:5000", insecure: true } }
environments:
  qa: { registry: dev }
  prod:
    registry: dev
    kubeContext: prod
    namespace: shop
    canary: { traffic: ${traffic}, prometheus: { url: "http://127.0.0.1:9090" }, steps: [ { setWeight: 10 }, { analysis: { duration: 1m, interval: 30s } } ] }
services:
  delivery: { build: { context: services/delivery }, chart: { path: services/delivery/chart } }
`;
    expect(() => parseConfig(yaml('{ type: replicas }'))).toThrow(/^environments\.prod\.canary\.queries: is required with traffic\.type replicas/m);
    const input = planRelease(parseConfig(yaml('{ type: gateway-api, route: delivery }')), { service: 'delivery', version: 'v1.0.0', requester: 'ci' });
    expect(input.environments[1].canary?.queries).toEqual(Object.entries(routerQueries(10)).map(([name, query]) => ({ name, query })));
    expect(input.environments[1].canary?.judge.metrics.map((m) => m.name)).toEqual(['error-ratio', 'p99-latency']);
  });
});
