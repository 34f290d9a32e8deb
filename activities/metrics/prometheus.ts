/**
 * The Prometheus adapter of the MetricProvider port: `query_range` over an analysis interval. Baseline and canary are
 * told apart in the query (`$track` becomes "baseline" or "canary", `$backend` the track's Service; promql.ts's
 * trackQuery). The request and the answer's
 * reading are shared with the other Prometheus-API providers (promql.ts).
 */
import type { MetricProvider } from '../ports';
import { PROMQL_HTTP, queryRangeUrl, readQueryRange, unreachable, type PromqlServer, type RangeQuery } from './promql';

export { MetricQueryError, metricsFailure, prometheusApiUrl, trackQuery, type QueryScope, type Track } from './promql';

/** Prometheus's HTTP outcomes (the shared Prometheus-API vocabulary). */
export const PROMETHEUS_HTTP = PROMQL_HTTP;

const PROMETHEUS: PromqlServer = { name: 'Prometheus', vocabulary: PROMETHEUS_HTTP };

export class PrometheusProvider implements MetricProvider {
  constructor(
    private readonly baseUrl: string,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  async queryRange(req: RangeQuery): Promise<number[]> {
    let res: Response;
    try {
      res = await this.fetchImpl(queryRangeUrl(this.baseUrl, req), { signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw unreachable(PROMETHEUS, this.baseUrl, err);
    }
    return readQueryRange(res, req, PROMETHEUS);
  }
}
