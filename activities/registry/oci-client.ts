/**
 * A small OCI Distribution client: just what promotion needs — read a manifest, copy blobs (mounting them within a
 * registry, streaming them between registries), write a manifest — with Basic and Bearer-token auth.
 * No maintained Node library covers cross-repository mounts and streaming copies with token auth, so it is ours.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Credentials, CredentialStore } from './credentials';

type BodyInit = NonNullable<RequestInit['body']>;

export const MANIFEST_MEDIA_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];
const INDEX_TYPES = new Set(MANIFEST_MEDIA_TYPES.slice(0, 2));

export class RegistryHttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'RegistryHttpError';
  }
}

export interface Manifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
  json: any;
}

export interface CopyStats {
  manifests: number;
  blobsMounted: number;
  blobsCopied: number;
  blobsSkipped: number;
  bytesCopied: number;
}

export interface RegistryEndpoint {
  host: string;
  /** Name in slipway.yaml, used to find credentials. */
  name?: string;
  insecure?: boolean;
}

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** One client per registry host: it keeps that host's tokens. */
export class OciRegistryClient {
  private readonly tokens = new Map<string, string>();
  private basic = false;
  private readonly base: string;

  constructor(
    readonly endpoint: RegistryEndpoint,
    private readonly credentials: CredentialStore,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {
    const plain = endpoint.insecure || /^(localhost|127\.|\[::1\])/.test(endpoint.host);
    this.base = `${plain ? 'http' : 'https'}://${endpoint.host}`;
  }

  private creds(): Credentials | undefined {
    return this.credentials.lookup(this.endpoint.host, this.endpoint.name);
  }

  /** Sends a request, answering a 401 challenge (Basic or Bearer) once. `body` is re-created for the retry. */
  async request(method: string, path: string, opts: { headers?: Record<string, string>; body?: () => BodyInit | undefined; scope: string; size?: number } = { scope: '' }): Promise<Response> {
    const url = path.startsWith('http') ? path : `${this.base}${path}`;
    const send = () => {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      const auth = this.authHeader(opts.scope);
      if (auth) headers.authorization = auth;
      const body = opts.body?.();
      const init: RequestInit & { duplex?: string } = { method, headers, body, redirect: 'follow' };
      if (body && typeof (body as any).getReader === 'function') init.duplex = 'half';
      return this.fetchImpl(url, init);
    };
    let res = await send();
    if (res.status === 401) {
      const challenge = res.headers.get('www-authenticate') ?? '';
      await res.arrayBuffer().catch(() => undefined);
      await this.answer(challenge, opts.scope);
      res = await send();
      if (res.status === 401) {
        throw new RegistryHttpError(`registry ${this.endpoint.host} refused the credentials for ${method} ${path} (401)`, 401);
      }
    }
    return res;
  }

  private authHeader(scope: string): string | undefined {
    const token = this.tokens.get(scope) ?? this.tokens.get('*');
    if (token) return `Bearer ${token}`;
    const c = this.basic ? this.creds() : undefined;
    return c ? `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}` : undefined;
  }

  private async answer(challenge: string, scope: string): Promise<void> {
    const [scheme, ...rest] = challenge.split(' ');
    if (/^basic$/i.test(scheme)) {
      if (!this.creds()) throw new RegistryHttpError(`registry ${this.endpoint.host} needs credentials and none are configured`, 401);
      this.basic = true;
      return;
    }
    if (!/^bearer$/i.test(scheme)) throw new RegistryHttpError(`registry ${this.endpoint.host} sent an unsupported challenge: ${challenge}`, 401);
    const params: Record<string, string> = {};
    for (const m of rest.join(' ').matchAll(/(\w+)="([^"]*)"/g)) params[m[1]] = m[2];
    if (!params.realm) throw new RegistryHttpError(`registry ${this.endpoint.host} sent a Bearer challenge without a realm`, 401);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    // The challenge's scope is what the server wants; ours adds the pull scope of a mount's source repository.
    const scopes = new Set([params.scope, ...scope.split(' ')].filter(Boolean));
    for (const s of scopes) url.searchParams.append('scope', s);
    const c = this.creds();
    const headers: Record<string, string> = {};
    if (c) headers.authorization = `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
    const res = await this.fetchImpl(url, { headers });
    if (!res.ok) throw new RegistryHttpError(`token service ${url.origin} answered ${res.status} for ${[...scopes].join(' ')}`, res.status);
    const body: any = await res.json();
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryHttpError(`token service ${url.origin} returned no token`, 401);
    this.tokens.set(scope, token);
  }

  async getManifest(repository: string, reference: string): Promise<Manifest> {
    const res = await this.request('GET', `/v2/${repository}/manifests/${reference}`, {
      headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
      scope: `repository:${repository}:pull`,
    });
    if (res.status === 404) throw new RegistryHttpError(`manifest ${this.endpoint.host}/${repository}:${reference} not found`, 404);
    if (!res.ok) throw new RegistryHttpError(`GET manifest ${repository}:${reference} on ${this.endpoint.host}: ${res.status} ${await res.text()}`, res.status);
    const bytes = Buffer.from(await res.arrayBuffer());
    const json = JSON.parse(bytes.toString('utf8'));
    const mediaType = json.mediaType ?? res.headers.get('content-type') ?? MANIFEST_MEDIA_TYPES[2];
    return { bytes, mediaType, json, digest: sha256(bytes) };
  }

  async putManifest(repository: string, reference: string, m: Manifest): Promise<string> {
    const res = await this.request('PUT', `/v2/${repository}/manifests/${reference}`, {
      headers: { 'content-type': m.mediaType },
      body: () => m.bytes,
      scope: `repository:${repository}:pull,push`,
    });
    if (!res.ok) throw new RegistryHttpError(`PUT manifest ${repository}:${reference} on ${this.endpoint.host}: ${res.status} ${await res.text()}`, res.status);
    return res.headers.get('docker-content-digest') ?? m.digest;
  }

  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const res = await this.request('HEAD', `/v2/${repository}/blobs/${digest}`, { scope: `repository:${repository}:pull,push` });
    return res.ok;
  }

  /** Cross-repository mount; true when the registry mounted it (201), false when it wants an upload instead. */
  async mountBlob(repository: string, digest: string, fromRepository: string): Promise<boolean> {
    const res = await this.request('POST', `/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(fromRepository)}`, {
      scope: `repository:${repository}:pull,push repository:${fromRepository}:pull`,
      headers: { 'content-length': '0' },
    });
    await res.arrayBuffer().catch(() => undefined);
    if (res.status === 201) return true;
    if (res.status === 202) {
      // An upload session was opened instead; cancel it so it does not linger.
      const loc = res.headers.get('location');
      if (loc) await this.request('DELETE', this.absolute(loc), { scope: `repository:${repository}:pull,push` }).catch(() => undefined);
      return false;
    }
    throw new RegistryHttpError(`mount of ${digest} into ${repository} on ${this.endpoint.host}: ${res.status}`, res.status);
  }

  async getBlob(repository: string, digest: string): Promise<Response> {
    const res = await this.request('GET', `/v2/${repository}/blobs/${digest}`, { scope: `repository:${repository}:pull` });
    if (!res.ok || !res.body) throw new RegistryHttpError(`GET blob ${repository}@${digest} on ${this.endpoint.host}: ${res.status}`, res.status);
    return res;
  }

  /** Monolithic upload: POST opens a session, one PUT streams the body and names the digest. */
  async uploadBlob(repository: string, digest: string, size: number, body: () => BodyInit): Promise<void> {
    const scope = `repository:${repository}:pull,push`;
    const start = await this.request('POST', `/v2/${repository}/blobs/uploads/`, { scope, headers: { 'content-length': '0' } });
    await start.arrayBuffer().catch(() => undefined);
    if (start.status !== 202) throw new RegistryHttpError(`start upload to ${repository} on ${this.endpoint.host}: ${start.status}`, start.status);
    const location = new URL(this.absolute(start.headers.get('location') ?? ''));
    location.searchParams.set('digest', digest);
    const put = await this.request('PUT', location.toString(), {
      scope,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body,
    });
    if (put.status !== 201) throw new RegistryHttpError(`upload of ${digest} to ${repository} on ${this.endpoint.host}: ${put.status} ${await put.text()}`, put.status);
  }

  private absolute(location: string): string {
    return location.startsWith('http') ? location : `${this.base}${location}`;
  }
}

/** Copies a manifest (recursively for indexes) and every blob it references from one repository to another. */
export async function copyManifest(
  src: { client: OciRegistryClient; repository: string; reference: string },
  dst: { client: OciRegistryClient; repository: string; reference: string },
  onProgress: (note: string) => void = () => undefined,
  stats: CopyStats = { manifests: 0, blobsMounted: 0, blobsCopied: 0, blobsSkipped: 0, bytesCopied: 0 },
): Promise<{ manifest: Manifest; stats: CopyStats; pushedDigest: string }> {
  const manifest = await src.client.getManifest(src.repository, src.reference);
  if (src.reference.startsWith('sha256:') && manifest.digest !== src.reference) {
    throw new RegistryHttpError(`registry returned manifest ${manifest.digest} for ${src.reference}`, 502);
  }
  const sameRegistry = src.client.endpoint.host === dst.client.endpoint.host;
  if (INDEX_TYPES.has(manifest.mediaType)) {
    for (const child of manifest.json.manifests ?? []) {
      await copyManifest({ ...src, reference: child.digest }, { ...dst, reference: child.digest }, onProgress, stats);
    }
  } else {
    const blobs: { digest: string; size: number }[] = [manifest.json.config, ...(manifest.json.layers ?? [])].filter(Boolean);
    for (const blob of blobs) {
      if (await dst.client.hasBlob(dst.repository, blob.digest)) {
        stats.blobsSkipped++;
      } else if (sameRegistry && (await dst.client.mountBlob(dst.repository, blob.digest, src.repository))) {
        stats.blobsMounted++;
      } else {
        await streamBlob(src, dst, blob, stats);
      }
      onProgress(`blob ${blob.digest.slice(0, 19)} (${blob.size} bytes)`);
    }
  }
  const pushedDigest = await dst.client.putManifest(dst.repository, dst.reference, manifest);
  stats.manifests++;
  return { manifest, stats, pushedDigest };
}

async function streamBlob(
  src: { client: OciRegistryClient; repository: string },
  dst: { client: OciRegistryClient; repository: string },
  blob: { digest: string; size: number },
  stats: CopyStats,
): Promise<void> {
  // The body is a factory: if the PUT meets a 401 challenge, the blob is fetched again for the retry.
  await dst.client.uploadBlob(dst.repository, blob.digest, blob.size, () => {
    const stream = (async function* () {
      const res = await src.client.getBlob(src.repository, blob.digest);
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        stats.bytesCopied += chunk.length;
        yield chunk;
      }
    })();
    return Readable.toWeb(Readable.from(stream)) as unknown as BodyInit;
  });
  stats.blobsCopied++;
}
