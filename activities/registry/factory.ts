/** Chooses the Registry adapter by the registry's `type` (one adapter per vendor, as Argo's metric providers). */
import type { RegistryRef } from '../../model/types';
import { ErrorTypes } from '../../model/errors';
import { portError } from '../errors';
import type { Registry } from '../ports';
import { AcrRegistry } from './acr';
import type { CredentialStore } from './credentials';
import { OciRegistry } from './oci';

export interface RegistryFactoryOptions {
  credentials: CredentialStore;
  /** Builds the ARM client for an ACR registry; the worker passes one using DefaultAzureCredential. */
  armClient?: (ref: RegistryRef) => ConstructorParameters<typeof AcrRegistry>[0];
  fetchImpl?: typeof fetch;
}

export function registryFactory(opts: RegistryFactoryOptions): (ref: RegistryRef) => Registry {
  const oci = new OciRegistry(opts.credentials, opts.fetchImpl);
  const acr = new Map<string, AcrRegistry>();
  return (ref) => {
    if (ref.type === 'oci') return oci;
    if (!opts.armClient) throw portError(ErrorTypes.RegistryAuth, `registry ${ref.name} is an ACR registry but this worker has no Azure credentials configured`);
    let a = acr.get(ref.name);
    if (!a) acr.set(ref.name, (a = new AcrRegistry(opts.armClient(ref), opts.credentials, opts.fetchImpl)));
    return a;
  };
}
