/**
 * The Azure Container Registry adapter of the Registry port: promotion is one ARM `importImage` call, which copies
 * by digest inside Azure (no bytes through the worker). The ARM client comes in through the constructor. ARM says
 * only that the import finished, so the result is read back through the registry's own API (the OCI client against
 * the login server, with the worker's credentials) before the stage may succeed.
 */
import type { ContainerRegistryManagementClient, ImportImageParameters } from '@azure/arm-containerregistry';
import { ErrorTypes } from '../../model/errors';
import type { CopyImageInput, CopyImageResult } from '../../model/types';
import { heartbeatWhileProgressing, signal } from '../common';
import { classifyHttp, classifyNetwork, portError } from '../errors';
import { tickInterval } from '../exec';
import type { Progress, Registry } from '../ports';
import type { CredentialStore } from './credentials';
import { toRegistryFailure } from './oci';
import { OciRegistryClient } from './oci-client';
import { parseQualifiedImageRef } from '../../model/identifiers';

export class AcrRegistry implements Registry {
  constructor(
    private readonly arm: Pick<ContainerRegistryManagementClient, 'registries'>,
    private readonly credentials: CredentialStore,
    private readonly fetchImpl: typeof fetch = fetch,
    private readonly tickMs?: number,
  ) {}

  async copy(input: CopyImageInput, progress: Progress): Promise<CopyImageResult> {
    const acr = input.targetRegistry.acr;
    if (!acr) throw portError(ErrorTypes.InvalidInput, `targetRegistry.acr: registry ${input.targetRegistry.name} has type acr but no acr section (subscriptionId, resourceGroup, registryName)`);
    const src = parseQualifiedImageRef(input.source);
    const dst = parseQualifiedImageRef(input.target);
    // Import by digest whenever the release knows it, so a moved source tag cannot change what lands.
    const expected = src.digest ?? input.expectDigest;
    if (src.digest && input.expectDigest && src.digest !== input.expectDigest) {
      throw portError(ErrorTypes.DigestMismatch, `source ${input.source} names digest ${src.digest}, the release expects ${input.expectDigest}; nothing was imported`);
    }
    const sourceImage = `${src.repository}${expected ? `@${expected}` : `:${src.tag ?? 'latest'}`}`;
    const tag = dst.tag ?? src.tag ?? 'latest';
    const target = `${dst.repository}:${tag}`;
    const sameRegistry = src.registry === input.targetRegistry.host;
    const params: ImportImageParameters = {
      source: sameRegistry
        ? {
            resourceId: `/subscriptions/${acr.subscriptionId}/resourceGroups/${acr.resourceGroup}/providers/Microsoft.ContainerRegistry/registries/${acr.registryName}`,
            sourceImage,
          }
        : { registryUri: src.registry, sourceImage, credentials: this.sourceCredentials(src.registry, input) },
      targetTags: [target],
      // NoForce: never overwrite a production tag that already points elsewhere.
      mode: 'NoForce',
    };
    const registryApi = new OciRegistryClient({ host: input.targetRegistry.host, name: input.targetRegistry.name, insecure: input.targetRegistry.insecure }, this.credentials, this.fetchImpl);
    const readBack = () => registryApi.manifestDigest(dst.repository, tag).catch((err) => Promise.reject(toRegistryFailure(err, `read back ${input.target}`)));

    const started = Date.now();
    let phase = 'importing';
    // ARM's long-running operation reports no bytes: every tick beats with the elapsed time while it polls (the
    // operation's own bound is the activity's start-to-close timeout).
    const stop = heartbeatWhileProgressing(
      () => ({ phase, registry: acr.registryName, sourceImage, target, elapsedMs: Date.now() - started }),
      progress,
      this.tickMs ?? tickInterval(),
    );
    try {
      try {
        await this.arm.registries.beginImportImageAndWait(acr.resourceGroup, acr.registryName, params, { abortSignal: signal() });
      } catch (err) {
        if (!isTagConflict(err)) throw armFailure(err, `ARM importImage of ${sourceImage} into ${acr.registryName}`);
        // NoForce refused because the tag exists. A retried import whose first attempt landed finds its own digest there.
        const existing = await readBack();
        if (!expected || existing !== expected) {
          throw portError(
            ErrorTypes.TagExists,
            `${acr.registryName}: tag ${target} already exists${existing ? ` at ${existing}` : ''}${expected ? ` and the release is ${expected}` : ''}; promotion never overwrites a tag (importImage mode NoForce)`,
            { tag: target, existing, expected },
          );
        }
        phase = 'already imported';
      }
      if (phase === 'importing') phase = 'verifying';
      const actual = await readBack();
      if (!actual || (expected && actual !== expected)) {
        throw portError(
          ErrorTypes.DigestMismatch,
          `${input.targetRegistry.host}/${target} is ${actual ?? 'absent'} after the import${expected ? `, the release is ${expected}` : ''}`,
          { tag: target, actual, expected },
        );
      }
      return {
        source: input.source,
        target: input.target,
        digest: actual,
        mediaType: 'unknown (imported by ACR)',
        method: 'acr-import',
        manifests: 1,
        blobsMounted: 0,
        blobsCopied: 0,
        blobsSkipped: 0,
        bytesCopied: 0,
      };
    } finally {
      stop();
    }
  }

  private sourceCredentials(host: string, input: CopyImageInput) {
    const c = this.credentials.lookup(host, input.sourceRegistry?.host === host ? input.sourceRegistry.name : undefined);
    return c ? { username: c.username, password: c.password } : undefined;
  }
}

/** NoForce onto an existing tag: a 409 on the request, or a failed operation whose error says Conflict / already exists. */
function isTagConflict(err: unknown): boolean {
  const e = err as { statusCode?: number; code?: string; message?: string };
  return e?.statusCode === 409 || /\bConflict\b|already exists/i.test(`${e?.code ?? ''} ${e?.message ?? ''}`);
}

/** ARM's failures in the shared vocabulary: RestErrors by status, a failed operation by its code. */
function armFailure(err: unknown, what: string): unknown {
  const e = err as { statusCode?: number; code?: string; message?: string };
  if (typeof e?.statusCode === 'number') return portError(classifyHttp(e.statusCode), `${what}: ${e.message}`, { status: e.statusCode, code: e.code });
  const network = classifyNetwork(err, what);
  if (network !== err) return network;
  if (/long-running operation has failed/i.test(e?.message ?? '')) {
    // The operation's own error code: a passing fault on Azure's side may clear; anything else is the request's.
    const transient = /Internal|Timeout|Unavailable|Throttl|TooManyRequests/i.test(e.message!);
    return portError(transient ? ErrorTypes.RegistryUnavailable : ErrorTypes.RegistryRejected, `${what}: ${e.message}`);
  }
  return err;
}
