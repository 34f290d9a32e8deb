/**
 * The Prometheus adapter of the MetricProvider port: `query_range` over an analysis interval. Baseline and canary are
 * told apart by a label in the query (`$track` is replaced by "baseline" or "canary"). A failed query is an error,
 * never an empty series that could pass for "no regression".
 */
import type { ApplicationFailure } from '@temporalio/activity';
import { ErrorTypes, isRetryable, type ErrorType } from '../../model/errors';
import { classifyHttp, portError, type HttpVocabulary } from '../errors';
import type { MetricProvider } from '../ports';

/** Prometheus's HTTP outcomes: 4xx is the query (bad PromQL, an execution error), 408/429/5xx and no answer are not. */
export const PROMETHEUS_HTTP: HttpVocabulary = {
  auth: ErrorTypes.MetricQuery,
  notFound: ErrorTypes.MetricQuery,
  rejected: ErrorTypes.MetricQuery,
  unavailable: ErrorTypes.MetricsUnavailable,
};

/**
 * A query that did not return data, with its type in the error vocabulary: MetricsUnavailable (Prometheus or the
 * proxy in front of it was unreachable, timed out or answered 5xx — asking again later may work) or MetricQuery
 * (Prometheus refused the query, or returned something the judge cannot use — asking again cannot help).
 */
export class MetricQueryError extends Error {
  override name = 'MetricQueryError';
  readonly retryable: boolean;
  constructor(
    message: string,
    readonly type: ErrorType,
  ) {
    super(message);
    this.retryable = isRetryable(type);
  }
}

/** A failed query in the shared vocabulary, named after the metric it measured (`what`). */
export function metricsFailure(err: MetricQueryError, what: string): ApplicationFailure {
  return portError(err.type, `${what}: ${err.message}`);
}

export const trackQuery = (template: string, track: 'baseline' | 'canary'): string => template.replaceAll('$track', track);

/** The API URL under a base that may carry a path prefix (http://host/prometheus → http://host/prometheus/api/v1/…). */
export const prometheusApiUrl = (baseUrl: string, path: string): URL => {
  const base = new URL(baseUrl);
  base.pathname = `${base.pathname.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
  return base;
};

export class PrometheusProvider implements MetricProvider {
  constructor(
    private readonly baseUrl: string,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  async queryRange(req: { query: string; start: Date; end: Date; stepSeconds: number }): Promise<number[]> {
    const url = prometheusApiUrl(this.baseUrl, 'api/v1/query_range');
    url.searchParams.set('query', req.query);
    url.searchParams.set('start', (req.start.getTime() / 1000).toFixed(3));
    url.searchParams.set('end', (req.end.getTime() / 1000).toFixed(3));
    url.searchParams.set('step', String(req.stepSeconds));
    let res: Response;
    try {
      res = await this.fetchImpl(url, { signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw new MetricQueryError(`Prometheus at ${this.baseUrl} unreachable: ${(err as Error).message}`, ErrorTypes.MetricsUnavailable);
    }
    const body: any = await res.json().catch(() => undefined);
    if (!res.ok || body?.status !== 'success') {
      // A 200 whose body is not a success is Prometheus misbehaving (or something else answering): try again.
      const type = res.ok ? ErrorTypes.MetricsUnavailable : classifyHttp(res.status, PROMETHEUS_HTTP);
      throw new MetricQueryError(
        `Prometheus ${isRetryable(type) ? 'unavailable' : 'query failed'} (HTTP ${res.status}${body?.errorType ? ` ${body.errorType}` : ''}): ${body?.error ?? 'no error message'} — query: ${req.query}`,
        type,
      );
    }
    if (body.data?.resultType !== 'matrix') throw new MetricQueryError(`Prometheus returned ${body.data?.resultType}, expected a matrix — query: ${req.query}`, ErrorTypes.MetricQuery);
    const series: { values: [number, string][] }[] = body.data.result;
    if (series.length > 1) throw new MetricQueryError(`the query returned ${series.length} series; aggregate it to one (e.g. sum by ()) — query: ${req.query}`, ErrorTypes.MetricQuery);
    // Prometheus writes NaN as "NaN"; the judge's nanStrategy decides what it means.
    return (series[0]?.values ?? []).map(([, v]) => Number(v));
  }
}
