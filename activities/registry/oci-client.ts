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

  /** The digest the registry reports for a manifest (HEAD, Docker-Content-Digest); undefined when absent. */
  async manifestDigest(repository: string, reference: string): Promise<string | undefined> {
    const res = await this.request('HEAD', `/v2/${repository}/manifests/${reference}`, {
      headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
      scope: `repository:${repository}:pull`,
    });
    if (res.status === 404) return undefined;
    if (!res.ok) throw new RegistryHttpError(`HEAD manifest ${repository}:${reference} on ${this.endpoint.host}: ${res.status}`, res.status);
    // A registry that omits the header is answered by hashing what it serves.
    return res.headers.get('docker-content-digest') ?? (await this.getManifest(repository, reference)).digest;
  }

  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const res = await this.request('HEAD', `/v2/${repository}/blobs/${digest}`, { scope: `repository:${repository}:pull,push` });
    if (res.status === 404) return false;
    if (!res.ok) throw new RegistryHttpError(`HEAD blob ${repository}@${digest} on ${this.endpoint.host}: ${res.status}`, res.status);
    return true;
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

/** A manifest is not the digest it must be. Nothing has been tagged when this is thrown by `copyManifest`. */
export class DigestMismatchError extends Error {
  constructor(
    message: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(message);
    this.name = 'DigestMismatchError';
  }
}

/** Where a copy is; the adapter heartbeats it on a timer (mutated in place while bytes flow). */
export interface CopyProgress {
  phase: 'reading' | 'blobs' | 'manifests' | 'verifying' | 'tagging' | 'done';
  /** Blobs finished (copied, mounted or already present) and the number the copy needs. */
  blobsDone: number;
  blobsTotal: number;
  bytesCopied: number;
  /** Bytes of the blobs that must be streamed (not present, not mountable); known once each is reached. */
  bytesTotal: number;
  /** The blob in flight. */
  blob?: string;
}

interface Ref {
  client: OciRegistryClient;
  repository: string;
  reference: string;
}

/**
 * Copies an image (an index with its children, or one manifest) and every blob it references, in an order that
 * never lets a tag point at something unverified: blobs, then every manifest BY DIGEST, then a HEAD by digest
 * that must report the expected digest, and only then the tag (when `dst.reference` is a tag).
 * `expectDigest` is checked against the source before anything is written.
 */
export async function copyManifest(
  src: Ref,
  dst: Ref,
  opts: { expectDigest?: string; progress?: CopyProgress; signal?: AbortSignal } = {},
): Promise<{ manifest: Manifest; stats: CopyStats; pushedDigest: string }> {
  // A cancelled or timed-out activity stops between requests and mid-stream, so a zombie attempt never tags.
  const live = () => opts.signal?.throwIfAborted();
  const progress: CopyProgress = opts.progress ?? { phase: 'reading', blobsDone: 0, blobsTotal: 0, bytesCopied: 0, bytesTotal: 0 };
  const stats: CopyStats = { manifests: 0, blobsMounted: 0, blobsCopied: 0, blobsSkipped: 0, bytesCopied: 0 };
  progress.phase = 'reading';
  const manifest = await readManifest(src, src.reference);
  if (opts.expectDigest && manifest.digest !== opts.expectDigest) {
    throw new DigestMismatchError(
      `source ${src.client.endpoint.host}/${src.repository}:${src.reference} has digest ${manifest.digest}, expected ${opts.expectDigest}; nothing was copied or tagged`,
      opts.expectDigest,
      manifest.digest,
    );
  }
  // The whole tree first, so progress can say "blob n of m" and children are known before anything is written.
  const children: Manifest[] = [];
  if (INDEX_TYPES.has(manifest.mediaType)) {
    for (const child of manifest.json.manifests ?? []) children.push(await readManifest(src, child.digest));
  }
  const blobs = new Map<string, number>();
  for (const m of children.length ? children : [manifest]) {
    for (const b of [m.json.config, ...(m.json.layers ?? [])].filter(Boolean) as { digest: string; size: number }[]) blobs.set(b.digest, b.size);
  }
  progress.phase = 'blobs';
  progress.blobsTotal = blobs.size;
  const sameRegistry = src.client.endpoint.host === dst.client.endpoint.host;
  for (const [digest, size] of blobs) {
    live();
    progress.blob = digest;
    if (await dst.client.hasBlob(dst.repository, digest)) {
      stats.blobsSkipped++;
    } else if (sameRegistry && (await dst.client.mountBlob(dst.repository, digest, src.repository))) {
      stats.blobsMounted++;
    } else {
      progress.bytesTotal += size;
      await streamBlob(src, dst, { digest, size }, stats, progress, live);
    }
    progress.blobsDone++;
  }
  progress.blob = undefined;
  progress.phase = 'manifests';
  for (const m of [...children, manifest]) {
    live();
    await dst.client.putManifest(dst.repository, m.digest, m);
    stats.manifests++;
  }
  progress.phase = 'verifying';
  const stored = await dst.client.manifestDigest(dst.repository, manifest.digest);
  if (stored !== manifest.digest) {
    throw new DigestMismatchError(
      `${dst.client.endpoint.host}/${dst.repository}@${manifest.digest} is reported as ${stored ?? 'absent'} after the push; the tag was not written`,
      manifest.digest,
      stored ?? 'absent',
    );
  }
  let pushedDigest = stored;
  if (!dst.reference.startsWith('sha256:')) {
    live();
    progress.phase = 'tagging';
    pushedDigest = await dst.client.putManifest(dst.repository, dst.reference, manifest);
  }
  progress.phase = 'done';
  return { manifest, stats, pushedDigest };
}

async function readManifest(src: Ref, reference: string): Promise<Manifest> {
  const m = await src.client.getManifest(src.repository, reference);
  if (reference.startsWith('sha256:') && m.digest !== reference) {
    throw new DigestMismatchError(`${src.client.endpoint.host} returned manifest ${m.digest} for ${src.repository}@${reference}`, reference, m.digest);
  }
  return m;
}

async function streamBlob(src: Omit<Ref, 'reference'>, dst: Omit<Ref, 'reference'>, blob: { digest: string; size: number }, stats: CopyStats, progress: CopyProgress, live: () => void): Promise<void> {
  const before = progress.bytesCopied;
  // The body is a factory: if the PUT meets a 401 challenge, the blob is fetched again for the retry.
  await dst.client.uploadBlob(dst.repository, blob.digest, blob.size, () => {
    progress.bytesCopied = before;
    const stream = (async function* () {
      const res = await src.client.getBlob(src.repository, blob.digest);
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        live();
        progress.bytesCopied += chunk.length;
        yield chunk;
      }
    })();
    return Readable.toWeb(Readable.from(stream)) as unknown as BodyInit;
  });
  stats.bytesCopied += progress.bytesCopied - before;
  stats.blobsCopied++;
}
