/**
 * Which MetricProvider answers a canary's queries. The measure activity is given the configured URL only, so the
 * workers look that URL up in slipway.yaml's canary sections: `type: azure-monitor` gets the Azure Monitor adapter
 * (one per endpoint and identity, kept so its token is cached across intervals), anything else Prometheus.
 */
import type { ClientSecretCredentialOptions } from '@azure/identity';
import type { SlipwayConfig } from '../../model/config';
import type { MetricProvider } from '../ports';
import { AzureMonitorProvider, azureMonitorCredential, type AzureMonitorAuth } from './azure-monitor';
import { PrometheusProvider } from './prometheus';

export interface MetricSource {
  url: string;
  type?: 'prometheus' | 'azure-monitor';
  azure?: AzureMonitorAuth;
}

/** Every environment's canary.prometheus section. */
export function metricSourcesOf(config: Pick<SlipwayConfig, 'environments'>): MetricSource[] {
  return Object.values(config.environments).flatMap((e) => (e.canary ? [e.canary.prometheus] : []));
}

export interface MetricProviderOptions {
  env?: NodeJS.ProcessEnv;
  fetchImpl?: typeof fetch;
  /** Passed to the Azure AD credential (tests: the local authority's CA). */
  credentialOptions?: ClientSecretCredentialOptions;
}

/** `sources` is read on every call, so a changed slipway.yaml is followed without restarting the worker. */
export function metricProviders(sources: () => Iterable<MetricSource>, opts: MetricProviderOptions = {}): (url: string) => MetricProvider {
  const azure = new Map<string, AzureMonitorProvider>();
  return (url) => {
    const source = [...sources()].find((s) => s.url === url && s.type === 'azure-monitor');
    if (!source) return new PrometheusProvider(url, opts.fetchImpl);
    const key = JSON.stringify([url, source.azure ?? null]);
    let provider = azure.get(key);
    if (!provider) {
      const { credential, secrets } = azureMonitorCredential(source.azure, opts.env ?? process.env, opts.credentialOptions);
      provider = new AzureMonitorProvider(url, credential, opts.fetchImpl, secrets);
      // Without its secret the provider only reports that; the next call looks in the environment again.
      if (!source.azure || secrets.length) azure.set(key, provider);
    }
    return provider;
  };
}
