/**
 * The Azure Monitor managed-Prometheus adapter of the MetricProvider port, for AKS users: the same PromQL
 * `query_range` (request and answer shared with the Prometheus adapter, promql.ts) against an Azure Monitor
 * workspace's query endpoint, with an Azure AD bearer token for the workspace's audience. The token comes from a
 * TokenCredential (@azure/identity: client credentials, or workload/managed identity), which caches and refreshes it.
 * Neither the client secret nor the token appears in a result, an error or a log line.
 */
import { ClientSecretCredential, CredentialUnavailableError, DefaultAzureCredential, type ClientSecretCredentialOptions } from '@azure/identity';
import type { AccessToken, TokenCredential } from '@azure/core-auth';
import { ErrorTypes } from '../../model/errors';
import type { MetricProvider } from '../ports';
import { MetricQueryError, PROMQL_HTTP, queryRangeUrl, readQueryRange, unreachable, type PromqlServer, type RangeQuery } from './promql';

/** The audience of Azure Monitor's managed Prometheus query API. */
export const AZURE_MONITOR_SCOPE = 'https://prometheus.monitor.azure.com/.default';
export const DEFAULT_CLIENT_SECRET_ENV = 'SLIPWAY_AZURE_MONITOR_CLIENT_SECRET';

const AZURE_MONITOR: PromqlServer = {
  name: 'Azure Monitor',
  vocabulary: PROMQL_HTTP,
  authHint: 'the identity needs the Monitoring Data Reader role on the Azure Monitor workspace',
};

/** slipway.yaml's canary.prometheus.azure: who the workers are in Azure AD (the secret itself stays in their environment). */
export interface AzureMonitorAuth {
  tenantId: string;
  clientId: string;
  clientSecretEnv?: string;
  authorityHost?: string;
}

// Azure AD's token errors that a retry cannot fix: a wrong tenant, client or secret, a missing consent.
const REFUSED_GRANT = /invalid_client|unauthorized_client|invalid_grant|invalid_request|invalid_scope|invalid_resource|AADSTS(7000215|700016|90002|7000222|65001|500011)/;

/** Removes anything secret from a message: the known values, and bearer tokens or client secrets in any text. */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join('[redacted]');
  return out.replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi, '$1[redacted]').replace(/(client_secret=)[^&\s"']+/gi, '$1[redacted]');
}

export class AzureMonitorProvider implements MetricProvider {
  private lastToken: string | undefined;

  /**
   * @param queryEndpoint the workspace's query endpoint (https://<workspace>.<region>.prometheus.monitor.azure.com)
   * @param secrets values never to repeat in an error (the client secret the credential was built with)
   */
  constructor(
    private readonly queryEndpoint: string,
    private readonly credential: TokenCredential,
    private readonly fetchImpl: typeof fetch = fetch,
    private readonly secrets: readonly string[] = [],
  ) {}

  async queryRange(req: RangeQuery): Promise<number[]> {
    const token = await this.token();
    let res: Response;
    try {
      res = await this.fetchImpl(queryRangeUrl(this.queryEndpoint, req), { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw this.scrubbed(unreachable(AZURE_MONITOR, this.queryEndpoint, err));
    }
    try {
      return await readQueryRange(res, req, AZURE_MONITOR);
    } catch (err) {
      throw err instanceof MetricQueryError ? this.scrubbed(err) : err;
    }
  }

  private async token(): Promise<string> {
    let t: AccessToken | null;
    try {
      t = await this.credential.getToken(AZURE_MONITOR_SCOPE, { abortSignal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw this.scrubbed(err instanceof MetricQueryError ? err : tokenFailure(err));
    }
    if (!t?.token) throw new MetricQueryError('Azure AD returned no token for Azure Monitor', ErrorTypes.MetricsUnavailable);
    this.lastToken = t.token;
    return t.token;
  }

  private scrubbed(err: MetricQueryError): MetricQueryError {
    const message = redact(err.message, [...this.secrets, this.lastToken]);
    return message === err.message ? err : new MetricQueryError(message, err.type);
  }
}

/**
 * Azure AD's answer to the token request, in the vocabulary: credentials it refuses (a wrong secret, tenant or
 * client; a credential that is not configured) are MetricQuery — retrying sends the same ones; a throttled or
 * failing token service, or none reachable, is MetricsUnavailable.
 */
export function tokenFailure(err: unknown): MetricQueryError {
  const e = err as { name?: string; message?: string; statusCode?: number; errorResponse?: { error?: string } };
  const first = String(e?.message ?? err).split('\n')[0];
  const status = e?.statusCode;
  const busy = status === 408 || status === 429 || (status !== undefined && status >= 500);
  const refused = !busy && (err instanceof CredentialUnavailableError || (status !== undefined && status >= 400) || REFUSED_GRANT.test(`${e?.errorResponse?.error ?? ''} ${first}`));
  const type = refused ? ErrorTypes.MetricQuery : ErrorTypes.MetricsUnavailable;
  return new MetricQueryError(`Azure AD ${type === ErrorTypes.MetricQuery ? 'refused the credentials' : 'token service unavailable'} for Azure Monitor${status ? ` (HTTP ${status})` : ''}: ${first}`, type);
}

/**
 * The credential the workers use: client credentials when slipway.yaml names an application (its secret from the
 * environment variable it names), else DefaultAzureCredential (workload identity, managed identity, az login).
 * A missing secret is reported when a query needs the token, not at worker start.
 */
export function azureMonitorCredential(auth: AzureMonitorAuth | undefined, env: NodeJS.ProcessEnv = process.env, options: ClientSecretCredentialOptions = {}): { credential: TokenCredential; secrets: string[] } {
  if (!auth) return { credential: new DefaultAzureCredential(), secrets: [] };
  const variable = auth.clientSecretEnv ?? DEFAULT_CLIENT_SECRET_ENV;
  const secret = env[variable];
  if (!secret) {
    const missing: TokenCredential = {
      getToken: async () => {
        throw new MetricQueryError(`Azure AD credentials for Azure Monitor: ${variable} is not set in the worker's environment (the client secret of ${auth.clientId})`, ErrorTypes.MetricQuery);
      },
    };
    return { credential: missing, secrets: [] };
  }
  const credential = new ClientSecretCredential(auth.tenantId, auth.clientId, secret, {
    ...options,
    ...(auth.authorityHost ? { authorityHost: auth.authorityHost } : {}),
  });
  return { credential, secrets: [secret] };
}
