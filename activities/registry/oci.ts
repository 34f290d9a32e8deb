/** The OCI Distribution adapter of the Registry port. */
import { ErrorTypes } from '../../model/errors';
import type { CopyImageInput, CopyImageResult, RegistryRef } from '../../model/types';
import { heartbeatWhileProgressing, signal } from '../common';
import { classifyHttp, classifyNetwork, portError } from '../errors';
import { tickInterval } from '../exec';
import type { Progress, Registry } from '../ports';
import type { CredentialStore } from './credentials';
import { copyManifest, DigestMismatchError, OciRegistryClient, RegistryHttpError, type CopyProgress } from './oci-client';
import { parseQualifiedImageRef } from '../../model/identifiers';

export class OciRegistry implements Registry {
  private readonly clients = new Map<string, OciRegistryClient>();

  constructor(
    private readonly credentials: CredentialStore,
    private readonly fetchImpl: typeof fetch = fetch,
    /** How often a running copy reports progress; defaults to a third of the activity's heartbeat timeout. */
    private readonly tickMs?: number,
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
    const src = parseQualifiedImageRef(input.source);
    const dst = parseQualifiedImageRef(input.target);
    const srcRef = src.digest ?? src.tag ?? 'latest';
    const srcClient = this.client(src.registry, input.sourceRegistry?.host === src.registry ? input.sourceRegistry : undefined);
    const dstClient = this.client(dst.registry, input.targetRegistry.host === dst.registry ? input.targetRegistry : undefined);
    const state: CopyProgress = { phase: 'reading', blobsDone: 0, blobsTotal: 0, bytesCopied: 0, bytesTotal: 0 };
    // Beats on a timer while bytes flow, not once per blob: one big layer may take longer than the heartbeat timeout.
    const stop = heartbeatWhileProgressing(
      () => ({
        phase: state.phase,
        blob: `${Math.min(state.blobsDone + 1, state.blobsTotal)}/${state.blobsTotal}`,
        bytesCopied: state.bytesCopied,
        bytesTotal: state.bytesTotal,
        ...(state.blob ? { digest: state.blob } : {}),
      }),
      progress,
      this.tickMs ?? tickInterval(),
    );
    try {
      const { manifest, stats } = await copyManifest(
        { client: srcClient, repository: src.repository, reference: srcRef },
        { client: dstClient, repository: dst.repository, reference: dst.tag ?? dst.digest ?? srcRef },
        { expectDigest: input.expectDigest, progress: state, signal: signal() },
      );
      return { source: input.source, target: input.target, digest: manifest.digest, mediaType: manifest.mediaType, method: 'oci-copy', ...stats };
    } catch (err) {
      throw toRegistryFailure(err, `copy ${input.source} → ${input.target}`);
    } finally {
      stop();
    }
  }
}

/** Every failure of the OCI client in the shared vocabulary: 401/403 and 404 are final, 5xx and network errors are not. */
export function toRegistryFailure(err: unknown, what: string): unknown {
  if (err instanceof DigestMismatchError) return portError(ErrorTypes.DigestMismatch, err.message, { expected: err.expected, actual: err.actual });
  if (err instanceof RegistryHttpError) return portError(classifyHttp(err.status), err.message, { status: err.status });
  return classifyNetwork(err, what);
}

