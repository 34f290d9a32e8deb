/** The OCI Distribution adapter of the Registry port. */
import { ApplicationFailure } from '@temporalio/activity';
import { ErrorTypes } from '../../workflows/errors';
import type { CopyImageInput, CopyImageResult, RegistryRef } from '../../workflows/types';
import type { Progress, Registry } from '../ports';
import type { CredentialStore } from './credentials';
import { copyManifest, OciRegistryClient, RegistryHttpError } from './oci-client';
import { parseReference } from './reference';

export class OciRegistry implements Registry {
  private readonly clients = new Map<string, OciRegistryClient>();

  constructor(
    private readonly credentials: CredentialStore,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  client(host: string, ref?: RegistryRef): OciRegistryClient {
    let c = this.clients.get(host);
    if (!c) {
      c = new OciRegistryClient({ host, name: ref?.name, insecure: ref?.insecure }, this.credentials, this.fetchImpl);
      this.clients.set(host, c);
    }
    return c;
  }

  async copy(input: CopyImageInput, progress: Progress): Promise<CopyImageResult> {
    const src = parseReference(input.source);
    const dst = parseReference(input.target);
    const srcRef = src.digest ?? src.tag ?? 'latest';
    const srcClient = this.client(src.registry, input.sourceRegistry?.host === src.registry ? input.sourceRegistry : undefined);
    const dstClient = this.client(dst.registry, input.targetRegistry.host === dst.registry ? input.targetRegistry : undefined);
    try {
      const { manifest, stats, pushedDigest } = await copyManifest(
        { client: srcClient, repository: src.repository, reference: srcRef },
        { client: dstClient, repository: dst.repository, reference: dst.tag ?? dst.digest ?? srcRef },
        (note) => progress({ note }),
      );
      if (input.expectDigest && manifest.digest !== input.expectDigest) {
        throw ApplicationFailure.nonRetryable(`source ${input.source} has digest ${manifest.digest}, expected ${input.expectDigest}`, ErrorTypes.DigestMismatch);
      }
      if (pushedDigest !== manifest.digest) {
        throw ApplicationFailure.nonRetryable(`registry stored ${input.target} as ${pushedDigest}, source is ${manifest.digest}`, ErrorTypes.DigestMismatch);
      }
      return { source: input.source, target: input.target, digest: manifest.digest, mediaType: manifest.mediaType, method: 'oci-copy', ...stats };
    } catch (err) {
      throw classify(err);
    }
  }
}

/** 404 and 401/403 cannot be fixed by retrying; network errors and 5xx can. */
export function classify(err: unknown): unknown {
  if (err instanceof RegistryHttpError) {
    if (err.status === 404) return ApplicationFailure.nonRetryable(err.message, ErrorTypes.ImageNotFound);
    if (err.status === 401 || err.status === 403) return ApplicationFailure.nonRetryable(err.message, ErrorTypes.RegistryAuth);
  }
  return err;
}
