/**
 * The Azure Container Registry adapter of the Registry port: promotion is one ARM `importImage` call, which copies
 * by digest inside Azure (no bytes through the worker). The ARM client comes in through the constructor.
 */
import type { ContainerRegistryManagementClient, ImportImageParameters } from '@azure/arm-containerregistry';
import type { CopyImageInput, CopyImageResult } from '../../workflows/types';
import type { Progress, Registry } from '../ports';
import type { CredentialStore } from './credentials';
import { parseReference } from './reference';

export class AcrRegistry implements Registry {
  constructor(
    private readonly arm: Pick<ContainerRegistryManagementClient, 'registries'>,
    private readonly credentials: CredentialStore,
  ) {}

  async copy(input: CopyImageInput, progress: Progress): Promise<CopyImageResult> {
    const acr = input.targetRegistry.acr;
    if (!acr) throw new Error(`registry ${input.targetRegistry.name} is not an ACR registry`);
    const src = parseReference(input.source);
    const dst = parseReference(input.target);
    const sourceImage = `${src.repository}${src.digest ? `@${src.digest}` : `:${src.tag ?? 'latest'}`}`;
    const sameRegistry = src.registry === input.targetRegistry.host;
    const params: ImportImageParameters = {
      source: sameRegistry
        ? {
            resourceId: `/subscriptions/${acr.subscriptionId}/resourceGroups/${acr.resourceGroup}/providers/Microsoft.ContainerRegistry/registries/${acr.registryName}`,
            sourceImage,
          }
        : { registryUri: src.registry, sourceImage, credentials: this.sourceCredentials(src.registry, input) },
      targetTags: [`${dst.repository}:${dst.tag ?? src.tag ?? 'latest'}`],
      // NoForce: never overwrite a production tag that already points elsewhere.
      mode: 'NoForce',
    };
    progress({ note: `ARM importImage into ${acr.registryName}`, sourceImage });
    await this.arm.registries.beginImportImageAndWait(acr.resourceGroup, acr.registryName, params);
    return {
      source: input.source,
      target: input.target,
      digest: src.digest ?? input.expectDigest ?? '',
      mediaType: 'unknown (imported by ACR)',
      method: 'acr-import',
      manifests: 1,
      blobsMounted: 0,
      blobsCopied: 0,
      blobsSkipped: 0,
      bytesCopied: 0,
    };
  }

  private sourceCredentials(host: string, input: CopyImageInput) {
    const c = this.credentials.lookup(host, input.sourceRegistry?.host === host ? input.sourceRegistry.name : undefined);
    return c ? { username: c.username, password: c.password } : undefined;
  }
}
