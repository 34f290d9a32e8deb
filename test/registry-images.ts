/**
 * Images made of random bytes, pushed straight to a real registry through the OCI client (no Docker build): what
 * promotion tests need is distinct digests and blobs of a chosen size, fast. Also a fetch wrapper that lets a test
 * watch, slow down or alter the registry's traffic.
 */
import { randomBytes } from 'node:crypto';
import { EnvCredentialStore } from '../activities/registry/credentials';
import { OciRegistryClient, sha256, type Manifest } from '../activities/registry/oci-client';
import type { RegistryEndpoint } from '../client/stack';
import { ensureRegistry } from '../client/stack';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** The two local registries of the test stack (started if they are not running; reused when they are). */
export async function localRegistries(): Promise<{ a: RegistryEndpoint; b: RegistryEndpoint; env: Record<string, string> }> {
  const [a, b] = await Promise.all([ensureRegistry('registry', 5000), ensureRegistry('registry-b', 5001)]);
  return {
    a,
    b,
    env: {
      SLIPWAY_REGISTRY_DEV_USERNAME: a.username,
      SLIPWAY_REGISTRY_DEV_PASSWORD: a.password,
      SLIPWAY_REGISTRY_OTHER_USERNAME: b.username,
      SLIPWAY_REGISTRY_OTHER_PASSWORD: b.password,
    },
  };
}

export const clientFor = (endpoint: RegistryEndpoint, name: string, env: Record<string, string>, fetchImpl?: typeof fetch) =>
  new OciRegistryClient({ host: endpoint.url, name, insecure: true }, new EnvCredentialStore(env, '/nonexistent'), fetchImpl);

/** Pushes a one-layer image of `layerBytes` random bytes under `tag`; returns its manifest digest and blobs. */
export async function pushRandomImage(client: OciRegistryClient, repository: string, tag: string, layerBytes = 1024): Promise<{ digest: string; layer: { digest: string; size: number }; manifest: Manifest }> {
  const layer = randomBytes(layerBytes);
  const layerDigest = sha256(layer);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layerDigest] }, config: {} }));
  const blobs = [
    { bytes: config, digest: sha256(config) },
    { bytes: layer, digest: layerDigest },
  ];
  for (const b of blobs) await client.uploadBlob(repository, b.digest, b.bytes.length, () => b.bytes);
  const json = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: blobs[0].digest, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length }],
  };
  const bytes = Buffer.from(JSON.stringify(json));
  const manifest: Manifest = { bytes, mediaType: OCI_MANIFEST, digest: sha256(bytes), json };
  await client.putManifest(repository, tag, manifest);
  return { digest: manifest.digest, layer: { digest: layerDigest, size: layer.length }, manifest };
}

export interface Exchange {
  method: string;
  path: string;
  status: number;
}

/**
 * A fetch that records every exchange and lets `rewrite` replace a response (to play a misbehaving registry)
 * and `throttle` slow a response body down (bytes per 100 ms) for requests it matches.
 */
export function watchedFetch(opts: { rewrite?: (req: { method: string; path: string }, res: Response) => Response | undefined; throttle?: { match: (path: string) => boolean; bytesPer100ms: number } } = {}) {
  const log: Exchange[] = [];
  const impl: typeof fetch = async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const method = (init?.method ?? 'GET').toUpperCase();
    let res = await fetch(input, init);
    log.push({ method, path: url.pathname, status: res.status });
    res = opts.rewrite?.({ method, path: url.pathname }, res) ?? res;
    if (opts.throttle?.match(url.pathname) && res.body && method === 'GET') {
      const step = opts.throttle.bytesPer100ms;
      const source = res.body;
      const slow = new ReadableStream<Uint8Array>({
        async start(controller) {
          for await (const chunk of source as unknown as AsyncIterable<Uint8Array>) {
            for (let i = 0; i < chunk.length; i += step) {
              await new Promise((r) => setTimeout(r, 100));
              controller.enqueue(chunk.subarray(i, i + step));
            }
          }
          controller.close();
        },
      });
      res = new Response(slow, { status: res.status, headers: res.headers });
    }
    return res;
  };
  return { impl, log };
}

/** Pushes an OCI index over `count` random images (each pushed by digest only); returns the index digest. */
export async function pushRandomIndex(client: OciRegistryClient, repository: string, tag: string, count = 2): Promise<{ digest: string; children: string[] }> {
  const children: Manifest[] = [];
  for (let i = 0; i < count; i++) {
    const img = await pushRandomImage(client, repository, `${tag}-child${i}`);
    children.push(img.manifest);
  }
  const json = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: children.map((m, i) => ({ mediaType: m.mediaType, digest: m.digest, size: m.bytes.length, platform: { architecture: i ? 'arm64' : 'amd64', os: 'linux' } })),
  };
  const bytes = Buffer.from(JSON.stringify(json));
  const index: Manifest = { bytes, mediaType: json.mediaType, digest: sha256(bytes), json };
  await client.putManifest(repository, tag, index);
  return { digest: index.digest, children: children.map((m) => m.digest) };
}
