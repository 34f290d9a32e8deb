/**
 * What every Prometheus-API metric provider shares (the Prometheus adapter, Azure Monitor's managed Prometheus):
 * the `query_range` URL, reading its answer into one series, and the error vocabulary. A failed query is an error,
 * never an empty series that could pass for "no regression".
 */
import type { ApplicationFailure } from '@temporalio/activity';
import { ErrorTypes, isRetryable, type ErrorType } from '../../model/errors';
import { NAME_RE } from '../../model/rules';
import { classifyHttp, portError, type HttpVocabulary } from '../errors';

/**
 * A query that did not return data, with its type in the error vocabulary: MetricsUnavailable (the server or the
 * proxy in front of it was unreachable, timed out or answered 408/429/5xx — asking again later may work) or
 * MetricQuery (the server refused the query or the credentials, or returned something the judge cannot use —
 * asking again cannot help).
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

/** Prometheus API outcomes: 4xx is the query (bad PromQL, an execution error), 408/429/5xx and no answer are not. */
export const PROMQL_HTTP: HttpVocabulary = {
  auth: ErrorTypes.MetricQuery,
  notFound: ErrorTypes.MetricQuery,
  rejected: ErrorTypes.MetricQuery,
  unavailable: ErrorTypes.MetricsUnavailable,
};

export type Track = 'baseline' | 'canary';

/** Where a release runs: `$namespace`, `$service` and each track's `$backend` (its Kubernetes Service). */
export interface QueryScope {
  namespace: string;
  service: string;
  backends: Record<Track, string>;
}

const VARIABLE = /\$(track|namespace|service|backend)\b/g;

/**
 * A query template for one track. `$track` becomes "baseline" or "canary"; `$namespace`, `$service` and `$backend`
 * the scope's names. Those are safe inside PromQL's quoted strings and regexes because they are checked here to be
 * DNS labels (NAME_RE, as slipway.yaml's names already are): a-z, 0-9 and "-" only — no quote or backslash to end a
 * string, no regex metacharacter to widen a match. Any other `$` (a regex anchor such as `=~"5..$"`) is left alone.
 */
export function trackQuery(template: string, track: Track, scope?: QueryScope): string {
  return template.replace(VARIABLE, (_, name: string) => {
    if (name === 'track') return track;
    if (!scope) throw new MetricQueryError(`the query uses $${name}, but this measurement has no namespace and service (a run started before they were passed) — query: ${template}`, ErrorTypes.MetricQuery);
    const value = name === 'namespace' ? scope.namespace : name === 'service' ? scope.service : scope.backends[track];
    if (!NAME_RE.test(value) || value.length > 63) throw new MetricQueryError(`$${name} "${value}" is not a DNS label; it is not put into PromQL — query: ${template}`, ErrorTypes.MetricQuery);
    return value;
  });
}

/** The API URL under a base that may carry a path prefix (http://host/prometheus → http://host/prometheus/api/v1/…). */
export const prometheusApiUrl = (baseUrl: string, path: string): URL => {
  const base = new URL(baseUrl);
  base.pathname = `${base.pathname.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
  return base;
};

export interface RangeQuery {
  query: string;
  start: Date;
  end: Date;
  stepSeconds: number;
}

export function queryRangeUrl(baseUrl: string, req: RangeQuery): URL {
  const url = prometheusApiUrl(baseUrl, 'api/v1/query_range');
  url.searchParams.set('query', req.query);
  url.searchParams.set('start', (req.start.getTime() / 1000).toFixed(3));
  url.searchParams.set('end', (req.end.getTime() / 1000).toFixed(3));
  url.searchParams.set('step', String(req.stepSeconds));
  return url;
}

/** Who answered, for messages ("Prometheus", "Azure Monitor"), and what a refusal of the credentials may mean. */
export interface PromqlServer {
  name: string;
  vocabulary?: HttpVocabulary;
  authHint?: string;
}

export function unreachable(server: PromqlServer, baseUrl: string, err: unknown): MetricQueryError {
  return new MetricQueryError(`${server.name} at ${baseUrl} unreachable: ${(err as Error).message}`, ErrorTypes.MetricsUnavailable);
}

// Prometheus puts a string in `error`; Azure's front door answers its own failures with { error: { code, message } }.
const errorText = (body: any): string => {
  const e = body?.error;
  if (typeof e === 'string') return e;
  if (e && typeof e === 'object') return [e.code, e.message].filter(Boolean).join(': ') || 'no error message';
  return 'no error message';
};

/** The one series a `query_range` answer carries, or the MetricQueryError that says why there is none. */
export async function readQueryRange(res: Response, req: RangeQuery, server: PromqlServer): Promise<number[]> {
  const body: any = await res.json().catch(() => undefined);
  if (!res.ok || body?.status !== 'success') {
    // A 200 whose body is not a success is the server misbehaving (or something else answering): try again.
    const type = res.ok ? ErrorTypes.MetricsUnavailable : classifyHttp(res.status, server.vocabulary ?? PROMQL_HTTP);
    const retryAfter = res.headers.get('retry-after');
    const hint = (res.status === 401 || res.status === 403) && server.authHint ? ` (${server.authHint})` : '';
    throw new MetricQueryError(
      `${server.name} ${isRetryable(type) ? 'unavailable' : 'query failed'} (HTTP ${res.status}${body?.errorType ? ` ${body.errorType}` : ''}): ${errorText(body)}${hint}${retryAfter ? `; retry after ${retryAfter}s` : ''} — query: ${req.query}`,
      type,
    );
  }
  if (body.data?.resultType !== 'matrix') throw new MetricQueryError(`${server.name} returned ${body.data?.resultType}, expected a matrix — query: ${req.query}`, ErrorTypes.MetricQuery);
  const series: { values: [number, string][] }[] = body.data.result;
  if (series.length > 1) throw new MetricQueryError(`the query returned ${series.length} series; aggregate it to one (e.g. sum by ()) — query: ${req.query}`, ErrorTypes.MetricQuery);
  // Prometheus writes NaN as "NaN"; the judge's nanStrategy decides what it means.
  return (series[0]?.values ?? []).map(([, v]) => Number(v));
}
