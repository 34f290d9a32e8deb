/**
 * The Prometheus adapter of the MetricProvider port: `query_range` over an analysis interval. Baseline and canary are
 * told apart by a label in the query (`$track` is replaced by "baseline" or "canary"). A failed query is an error,
 * never an empty series that could pass for "no regression".
 */
import type { MetricProvider } from '../ports';

export class MetricQueryError extends Error {
  override name = 'MetricQueryError';
}

export const trackQuery = (template: string, track: 'baseline' | 'canary'): string => template.replaceAll('$track', track);

export class PrometheusProvider implements MetricProvider {
  constructor(
    private readonly baseUrl: string,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  async queryRange(req: { query: string; start: Date; end: Date; stepSeconds: number }): Promise<number[]> {
    const url = new URL('/api/v1/query_range', this.baseUrl);
    url.searchParams.set('query', req.query);
    url.searchParams.set('start', (req.start.getTime() / 1000).toFixed(3));
    url.searchParams.set('end', (req.end.getTime() / 1000).toFixed(3));
    url.searchParams.set('step', String(req.stepSeconds));
    let res: Response;
    try {
      res = await this.fetchImpl(url, { signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw new MetricQueryError(`Prometheus at ${this.baseUrl} unreachable: ${(err as Error).message}`);
    }
    const body: any = await res.json().catch(() => undefined);
    if (!res.ok || body?.status !== 'success') {
      throw new MetricQueryError(`Prometheus query failed (${res.status}${body?.errorType ? ` ${body.errorType}` : ''}): ${body?.error ?? 'no error message'} — query: ${req.query}`);
    }
    if (body.data?.resultType !== 'matrix') throw new MetricQueryError(`Prometheus returned ${body.data?.resultType}, expected a matrix — query: ${req.query}`);
    const series: { values: [number, string][] }[] = body.data.result;
    if (series.length > 1) throw new MetricQueryError(`the query returned ${series.length} series; aggregate it to one (e.g. sum by ()) — query: ${req.query}`);
    // Prometheus writes NaN as "NaN"; the judge's nanStrategy decides what it means.
    return (series[0]?.values ?? []).map(([, v]) => Number(v));
  }
}
