/**
 * The Azure Monitor managed-Prometheus adapter against recorded exchanges (test/fixtures/azure-monitor): a local
 * HTTPS server on 127.0.0.1 plays both Azure AD (OpenID discovery, the client-credentials token) and the workspace's
 * query endpoint, and the real @azure/identity credential, built by the workers' factory from a canary section,
 * gets the token. Checked: the exact requests (scope, grant, bearer), the parsed series, each failure's place in the
 * error catalogue (401, 429 with Retry-After, 400 bad query, a refused secret, no secret, no endpoint), and that
 * neither the client secret nor the token appears in any result, error or log line.
 * What it does not prove: that Azure answers exactly so (the fixtures follow the documented shapes).
 */
import { AzureLogger, setLogLevel } from '@azure/logger';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AzureMonitorProvider, redact } from '../../activities/metrics/azure-monitor';
import { metricProviders, metricSourcesOf, type MetricSource } from '../../activities/metrics/factory';
import { MetricQueryError, metricsFailure } from '../../activities/metrics/promql';
import { PrometheusProvider } from '../../activities/metrics/prometheus';
import { canaryConfigSchema } from '../../model/config';
import { ErrorTypes } from '../../model/errors';

const FIXTURES = join(__dirname, '..', 'fixtures', 'azure-monitor');
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '3f1c9a2e-5b7d-4e8f-9a0b-1c2d3e4f5a6b';
const SECRET = 'Qx8~recorded.client-secret_value-0123456789';
const SECRET_ENV = 'AMW_READER_SECRET';

type Exchange = { request: { method: string; path: string; form?: Record<string, string> }; response: { status: number; headers: Record<string, string>; body: unknown } };
const fixture = (name: string): Exchange => JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8'));
const TOKEN = (fixture('token').response.body as { access_token: string }).access_token;

let server: Server;
let base: string;
let ca: string;
/** What the query endpoint answers next (a fixture name), and every request the server saw. */
let queryAnswer = 'query-range-success';
const seen: { method: string; path: string; url: URL; auth?: string; form?: URLSearchParams }[] = [];
/** Everything the Azure SDK logged while the tests ran (at info level). */
const logged: string[] = [];

function serve(res: import('node:http').ServerResponse, ex: Exchange) {
  const body = JSON.stringify(ex.response.body).replaceAll('{authority}', `${base}/${TENANT}`);
  res.writeHead(ex.response.status, ex.response.headers).end(body);
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-amw-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  ca = readFileSync(join(dir, 'cert.pem'), 'utf8');
  server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: ca }, (req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', base);
      const form = req.method === 'POST' ? new URLSearchParams(text) : undefined;
      seen.push({ method: req.method ?? '', path: url.pathname, url, auth: req.headers.authorization, form });
      if (url.pathname === `/${TENANT}/v2.0/.well-known/openid-configuration`) return serve(res, fixture('openid-configuration'));
      if (url.pathname === `/${TENANT}/oauth2/v2.0/token`) return serve(res, fixture(form?.get('client_secret') === SECRET ? 'token' : 'token-invalid-client'));
      if (url.pathname === '/api/v1/query_range') {
        if (req.headers.authorization !== `Bearer ${TOKEN}`) return serve(res, fixture('query-range-401'));
        return serve(res, fixture(queryAnswer));
      }
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  setLogLevel('info');
  AzureLogger.log = (...args: unknown[]) => void logged.push(args.map(String).join(' '));
});

afterAll(async () => {
  setLogLevel('error');
  await new Promise((r) => server.close(r));
});

beforeEach(() => {
  seen.length = 0;
  queryAnswer = 'query-range-success';
});

/** fetch over node:https trusting the test server's certificate (the global fetch has no per-call CA). */
const fetchWithCa: typeof fetch = (input, init) =>
  new Promise((resolve, reject) => {
    const req = request(String(input), { method: init?.method ?? 'GET', headers: init?.headers as Record<string, string>, ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode, headers: res.headers as Record<string, string> })));
    });
    req.on('error', reject);
    req.end();
  });

const source = (over: Partial<MetricSource> = {}): MetricSource => ({ url: base, type: 'azure-monitor', azure: { tenantId: TENANT, clientId: CLIENT, clientSecretEnv: SECRET_ENV, authorityHost: base }, ...over });
const providerFor = (s: MetricSource = source(), env: NodeJS.ProcessEnv = { [SECRET_ENV]: SECRET }) =>
  metricProviders(() => [s], { env, fetchImpl: fetchWithCa, credentialOptions: { tlsOptions: { ca }, disableInstanceDiscovery: true } })(s.url);

const now = new Date('2026-11-30T09:20:00Z');
const range = { query: 'sum(rate(http_requests_total{track="canary",code=~"5.."}[1m]))', start: new Date(now.getTime() - 40_000), end: now, stepSeconds: 10 };

/** Every error and result a test produced, checked for the secret and the token at the end. */
const outputs: string[] = [];
async function failure(p: Promise<unknown>): Promise<MetricQueryError> {
  const err = await p.then(
    (v) => {
      throw new Error(`expected a failure, got ${JSON.stringify(v)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MetricQueryError);
  const f = metricsFailure(err as MetricQueryError, 'errors');
  outputs.push(String((err as Error).message), (err as Error).stack ?? '', JSON.stringify(f), f.message);
  return err as MetricQueryError;
}

test('a query: one client-credentials token for the workspace audience, then PromQL query_range with it as bearer', async () => {
  const provider = providerFor();
  expect(provider).toBeInstanceOf(AzureMonitorProvider);
  const values = await provider.queryRange(range);
  const again = await provider.queryRange(range);
  outputs.push(JSON.stringify(values), JSON.stringify(again));
  expect(values).toEqual([0.0123, 0.0131, NaN, 0.0098]);
  expect(again).toEqual(values);

  const tokens = seen.filter((s) => s.path.endsWith('/oauth2/v2.0/token'));
  expect(tokens).toHaveLength(1); // cached by the credential across queries (and intervals: the factory keeps the provider)
  expect(tokens[0]!.method).toBe('POST');
  expect(Object.fromEntries(['grant_type', 'scope', 'client_id'].map((k) => [k, tokens[0]!.form?.get(k)]))).toEqual({ ...fixture('token').request.form, client_id: CLIENT });

  const queries = seen.filter((s) => s.path === '/api/v1/query_range');
  expect(queries).toHaveLength(2);
  expect(queries[0]!.method).toBe('GET');
  expect(queries[0]!.auth).toBe(`Bearer ${TOKEN}`);
  expect(Object.fromEntries(queries[0]!.url.searchParams)).toEqual({ query: range.query, start: '1796030360.000', end: '1796030400.000', step: '10' });
});

test('401 from the workspace (no Monitoring Data Reader role): a non-retryable MetricQuery naming the role', async () => {
  queryAnswer = 'query-range-401';
  const err = await failure(providerFor().queryRange(range));
  expect(err.type).toBe(ErrorTypes.MetricQuery);
  expect(err.retryable).toBe(false);
  expect(err.message).toMatch(/^Azure Monitor query failed \(HTTP 401\): AuthorizationFailed: The client does not have authorization .*Monitoring Data Reader/);
  expect(metricsFailure(err, 'errors')).toMatchObject({ type: 'MetricQueryError', nonRetryable: true });
});

test('429 with Retry-After: MetricsUnavailable (retried by the activity policy), the wait in the message', async () => {
  queryAnswer = 'query-range-429';
  const err = await failure(providerFor().queryRange(range));
  expect(err.type).toBe(ErrorTypes.MetricsUnavailable);
  expect(err.retryable).toBe(true);
  expect(err.message).toMatch(/^Azure Monitor unavailable \(HTTP 429\): TooManyRequests: .*; retry after 7s — query: sum\(rate/);
  expect(metricsFailure(err, 'errors')).toMatchObject({ type: 'MetricsUnavailableError', nonRetryable: false });
});

test('400 bad PromQL: MetricQuery with Prometheus’s errorType and message', async () => {
  queryAnswer = 'query-range-400';
  const err = await failure(providerFor().queryRange({ ...range, query: 'sum(rate(' }));
  expect(err.type).toBe(ErrorTypes.MetricQuery);
  expect(err.message).toBe('Azure Monitor query failed (HTTP 400 bad_data): invalid parameter "query": 1:10: parse error: unclosed left parenthesis — query: sum(rate(');
});

test('a client secret Azure AD refuses: MetricQuery with its AADSTS code, no query sent, the secret not repeated', async () => {
  const wrong = 'Zz9~wrong.secret_value-9876543210';
  const err = await failure(providerFor(source(), { [SECRET_ENV]: wrong }).queryRange(range));
  expect(err.type).toBe(ErrorTypes.MetricQuery);
  expect(err.message).toMatch(/^Azure AD refused the credentials for Azure Monitor.*AADSTS7000215/);
  expect(err.message).not.toContain(wrong);
  expect(seen.filter((s) => s.path === '/api/v1/query_range')).toEqual([]);
});

test('no secret in the environment: MetricQuery naming the variable; Azure AD is not asked', async () => {
  const err = await failure(providerFor(source(), {}).queryRange(range));
  expect(err.type).toBe(ErrorTypes.MetricQuery);
  expect(err.message).toContain(`${SECRET_ENV} is not set`);
  expect(seen).toEqual([]);
});

test('an endpoint that does not answer: MetricsUnavailable', async () => {
  const closed = source({ url: 'https://127.0.0.1:1' });
  const err = await failure(providerFor(closed).queryRange(range));
  expect(err.type).toBe(ErrorTypes.MetricsUnavailable);
  expect(err.message).toMatch(/^Azure Monitor at https:\/\/127\.0\.0\.1:1 unreachable/);
});

test('a proxy that echoes the request: the token is redacted from the error', async () => {
  const echo: typeof fetch = async (_url, init) =>
    new Response(JSON.stringify({ error: `upstream failed for request with Authorization: ${(init?.headers as Record<string, string>).authorization}` }), { status: 502 });
  const provider = new AzureMonitorProvider(base, { getToken: async () => ({ token: TOKEN, expiresOnTimestamp: Date.now() + 3_600_000 }) }, echo, [SECRET]);
  const err = await failure(provider.queryRange(range));
  expect(err.type).toBe(ErrorTypes.MetricsUnavailable);
  expect(err.message).toContain('Authorization: Bearer [redacted]');
  expect(redact(`client_secret=${SECRET}&x=1 ${SECRET}`, [SECRET])).toBe('client_secret=[redacted]&x=1 [redacted]');
});

test('the factory: azure-monitor sections by URL, Prometheus for everything else', () => {
  const make = metricProviders(() => [source(), { url: 'http://127.0.0.1:9090' }], { env: { [SECRET_ENV]: SECRET } });
  expect(make(base)).toBeInstanceOf(AzureMonitorProvider);
  expect(make(base)).toBe(make(base)); // kept, so its credential's token cache lasts across intervals
  const noSecret = metricProviders(() => [source()], { env: {} });
  expect(noSecret(base)).not.toBe(noSecret(base)); // not kept: the next interval looks for the secret again
  expect(make('http://127.0.0.1:9090')).toBeInstanceOf(PrometheusProvider);
  expect(make('http://prometheus.unlisted:9090')).toBeInstanceOf(PrometheusProvider);
  const environments = { prod: { canary: { prometheus: source() } }, dev: {} } as never;
  expect(metricSourcesOf({ environments })).toEqual([source()]);
});

test('config: the provider choice is optional and add-only', () => {
  const canary = (prometheus: object) => ({
    prometheus,
    queries: { errors: 'sum(rate(x{track="$track"}[1m]))' },
    judge: { metrics: [{ name: 'errors', groups: ['errors'], direction: 'increase' }], groupWeights: { errors: 100 }, thresholds: { pass: 95, marginal: 75 } },
    steps: [{ setWeight: 10 }, { analysis: { duration: '1m', interval: '30s' } }],
  });
  const plain = canaryConfigSchema.safeParse(canary({ url: 'http://prometheus:9090' }));
  if (!plain.success) throw new Error(plain.error.message);
  expect(plain.data.prometheus).toEqual({ url: 'http://prometheus:9090', stepSeconds: 10 });
  const amw = canaryConfigSchema.parse(canary({ url: 'https://amw-delivery-abcd.westeurope.prometheus.monitor.azure.com', type: 'azure-monitor', azure: { tenantId: TENANT, clientId: CLIENT } }));
  expect(amw.prometheus.azure).toEqual({ tenantId: TENANT, clientId: CLIENT, clientSecretEnv: 'SLIPWAY_AZURE_MONITOR_CLIENT_SECRET' });
  const refused = (p: object) => canaryConfigSchema.safeParse(canary(p)).error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  expect(refused({ url: 'http://amw:80', type: 'azure-monitor' })).toEqual(['prometheus.url: must be https for azure-monitor']);
  expect(refused({ url: 'http://prometheus:9090', azure: { tenantId: TENANT, clientId: CLIENT } })).toEqual(['prometheus.azure: is only for type: azure-monitor']);
  expect(refused({ url: 'https://amw', type: 'azure-monitor', azure: { tenantId: TENANT, clientId: CLIENT, clientSecret: SECRET } })).toEqual([expect.stringMatching(/^prometheus\.azure: Unrecognized key/)]);
});

afterAll(() => {
  // Last: nothing any test produced, nor anything the Azure SDK logged, carries the secret or the token.
  const everything = [...outputs, ...logged].join('\n');
  expect(logged.length).toBeGreaterThan(0);
  expect(everything).not.toContain(SECRET);
  expect(everything).not.toContain(TOKEN);
});
