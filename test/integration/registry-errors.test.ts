/**
 * Promotion by the OCI adapter against the real local registries (Debian's docker-registry on 127.0.0.1:5000 and
 * :5001): the landing tag is written only after the manifest is stored by digest and the registry confirms that
 * digest (issue 10, item 8); every failure arrives as a typed, correctly retryable error (item 6); a long blob copy
 * heartbeats on a timer while bytes flow (item 7).
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createBuilderActivities, createRegistryActivities } from '../../activities';
import { DockerImageBuilder } from '../../activities/docker/builder';
import { ensureDocker } from '../../client/stack';
import { BASE_IMAGE, ensureBaseImage } from '../../client/stack/base-image';
import { dockerFromEnv } from '../../workers/builder';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { OciRegistry } from '../../activities/registry/oci';
import type { RegistryEndpoint } from '../../client/stack';
import type { RegistryRef } from '../../model/types';
import { clientFor, localRegistries, pushRandomImage, pushRandomIndex, watchedFetch } from '../registry-images';

let A: RegistryEndpoint;
let B: RegistryEndpoint;
let env: Record<string, string>;
let dev: RegistryRef;
let other: RegistryRef;
const tag = () => `v1.0.${Date.now() % 1e6}-${randomBytes(3).toString('hex')}`;
const creds = () => new EnvCredentialStore(env, '/nonexistent');

beforeAll(async () => {
  ({ a: A, b: B, env } = await localRegistries());
  dev = { name: 'dev', type: 'oci', host: A.url, insecure: true };
  other = { name: 'other', type: 'oci', host: B.url, insecure: true };
});

describe('the landing tag is written last', () => {
  test('a source whose digest is not the expected one fails with DigestMismatchError and the target tag is never written', async () => {
    const a = clientFor(A, 'dev', env);
    const v = tag();
    await pushRandomImage(a, 'promo-src', v);
    const approved = await pushRandomImage(a, 'promo-src', `${v}-approved`);
    // Someone moved the source tag after the approval: the release expects `approved`, the tag holds another image.
    for (const [target, ref] of [
      [`${A.url}/prod/promo:${v}`, dev],
      [`${B.url}/prod/promo:${v}`, other],
    ] as const) {
      const oci = new OciRegistry(creds());
      await expect(oci.copy({ source: `${A.url}/promo-src:${v}`, sourceRegistry: dev, target, targetRegistry: ref, expectDigest: approved.digest }, () => undefined)).rejects.toMatchObject({
        type: 'DigestMismatchError',
        nonRetryable: true,
        message: expect.stringContaining(`expected ${approved.digest}`),
      });
      const check = clientFor(ref === dev ? A : B, ref.name, env);
      expect(await check.manifestDigest('prod/promo', v)).toBeUndefined();
    }
  });

  test('order on the wire: blobs, PUT by digest, HEAD by digest, and only then PUT of the tag', async () => {
    const a = clientFor(A, 'dev', env);
    const v = tag();
    const img = await pushRandomImage(a, 'order-src', v);
    const watch = watchedFetch();
    const oci = new OciRegistry(creds(), watch.impl);
    const r = await oci.copy({ source: `${A.url}/order-src@${img.digest}`, sourceRegistry: dev, target: `${B.url}/prod/order:${v}`, targetRegistry: other, expectDigest: img.digest }, () => undefined);
    expect(r).toMatchObject({ digest: img.digest, blobsCopied: 2, method: 'oci-copy' });
    const writes = watch.log.filter((e) => e.path.startsWith('/v2/prod/order/manifests/') && e.status < 400).map((e) => `${e.method} ${e.path.split('/').pop()}`);
    expect(writes).toEqual([`PUT ${img.digest}`, `HEAD ${img.digest}`, `PUT ${v}`]);
    expect(await clientFor(B, 'other', env).manifestDigest('prod/order', v)).toBe(img.digest);
  });

  test('an index: its children and the index itself are stored by digest and verified before the tag', async () => {
    const a = clientFor(A, 'dev', env);
    const v = tag();
    const idx = await pushRandomIndex(a, 'index-src', v);
    const watch = watchedFetch();
    const oci = new OciRegistry(creds(), watch.impl);
    const r = await oci.copy({ source: `${A.url}/index-src:${v}`, sourceRegistry: dev, target: `${B.url}/prod/index:${v}`, targetRegistry: other, expectDigest: idx.digest }, () => undefined);
    expect(r).toMatchObject({ digest: idx.digest, manifests: 3, blobsCopied: 4 });
    const writes = watch.log.filter((e) => e.path.startsWith('/v2/prod/index/manifests/') && e.status < 400).map((e) => `${e.method} ${e.path.split('/').pop()}`);
    expect(writes).toEqual([...idx.children.map((d) => `PUT ${d}`), `PUT ${idx.digest}`, `HEAD ${idx.digest}`, `PUT ${v}`]);
    const b = clientFor(B, 'other', env);
    expect(await b.manifestDigest('prod/index', v)).toBe(idx.digest);
    for (const d of idx.children) expect(await b.manifestDigest('prod/index', d)).toBe(d);
  });

  test('a registry that reports another digest for the stored manifest fails the copy before the tag is written', async () => {
    const a = clientFor(A, 'dev', env);
    const v = tag();
    const img = await pushRandomImage(a, 'liar-src', v);
    const bogus = `sha256:${'0'.repeat(64)}`;
    const watch = watchedFetch({
      rewrite: (req, res) => {
        if (req.method !== 'HEAD' || !/^\/v2\/prod\/liar\/manifests\/sha256:/.test(req.path)) return undefined;
        const headers = new Headers(res.headers);
        headers.set('docker-content-digest', bogus);
        return new Response(null, { status: res.status, headers });
      },
    });
    const oci = new OciRegistry(creds(), watch.impl);
    await expect(oci.copy({ source: `${A.url}/liar-src:${v}`, sourceRegistry: dev, target: `${A.url}/prod/liar:${v}`, targetRegistry: dev, expectDigest: img.digest }, () => undefined)).rejects.toMatchObject({
      type: 'DigestMismatchError',
      nonRetryable: true,
      message: expect.stringMatching(/reported as sha256:0{64}.*tag was not written/),
    });
    expect(await a.manifestDigest('prod/liar', v)).toBeUndefined();
    expect(watch.log.some((e) => e.method === 'PUT' && e.path === `/v2/prod/liar/manifests/${v}`)).toBe(false);
  });
});

describe('every failure in the shared vocabulary', () => {
  let down: Server;
  let downHost: string;
  beforeAll(async () => {
    down = createServer((_req, res) => res.writeHead(503, { 'content-type': 'text/plain' }).end('maintenance'));
    await new Promise<void>((r) => down.listen(0, '127.0.0.1', r));
    downHost = `127.0.0.1:${(down.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => down.close(() => r())));

  const copy = (source: string, target: string, store = creds(), sourceRegistry = dev, targetRegistry = other) =>
    createRegistryActivities({ registries: () => new OciRegistry(store) }).copyImage({ source, sourceRegistry, target, targetRegistry });

  test('wrong credentials (Basic) → RegistryAuthError, not retried', async () => {
    const bad = new EnvCredentialStore({ ...env, SLIPWAY_REGISTRY_OTHER_PASSWORD: 'wrong' }, '/nonexistent');
    const v = tag();
    await pushRandomImage(clientFor(A, 'dev', env), 'auth-src', v);
    await expect(copy(`${A.url}/auth-src:${v}`, `${B.url}/prod/auth:${v}`, bad)).rejects.toMatchObject({ type: 'RegistryAuthError', nonRetryable: true, message: expect.stringMatching(/refused the credentials/) });
  });

  test('a missing source → ImageNotFoundError, not retried', async () => {
    await expect(copy(`${A.url}/no-such-repo:v0`, `${B.url}/prod/none:v0`)).rejects.toMatchObject({ type: 'ImageNotFoundError', nonRetryable: true });
  });

  test('a registry that answers 503 → RegistryUnavailableError, retried', async () => {
    const ref: RegistryRef = { name: 'down', type: 'oci', host: downHost, insecure: true };
    await expect(copy(`${downHost}/x:v0`, `${B.url}/prod/x:v0`, creds(), ref)).rejects.toMatchObject({ type: 'RegistryUnavailableError', nonRetryable: false, message: expect.stringContaining('503') });
  });

  test('nobody listening (ECONNREFUSED) → RegistryUnavailableError, retried', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const host = `127.0.0.1:${port}`;
    const ref: RegistryRef = { name: 'gone', type: 'oci', host, insecure: true };
    await expect(copy(`${host}/x:v0`, `${B.url}/prod/x:v0`, creds(), ref)).rejects.toMatchObject({ type: 'RegistryUnavailableError', nonRetryable: false, message: expect.stringContaining('ECONNREFUSED') });
  });
});

describe('a Docker push in the same vocabulary', () => {
  const pushWith = async (store: EnvCredentialStore, registry: RegistryRef) => {
    const docker = dockerFromEnv({ DOCKER_HOST: (await ensureDocker()).host });
    await ensureBaseImage(docker);
    const v = tag();
    const repo = `${registry.host}/push-vocab`;
    await docker.getImage(BASE_IMAGE).tag({ repo, tag: v });
    const { pushImage } = createBuilderActivities({ builder: new DockerImageBuilder(docker, store), hostId: 'vocab', workspace: __dirname });
    return pushImage({ tag: `${repo}:${v}`, registry });
  };

  test('a push the registry refuses (wrong password) → RegistryAuthError, not retried', async () => {
    const bad = new EnvCredentialStore({ ...env, SLIPWAY_REGISTRY_DEV_PASSWORD: 'wrong' }, '/nonexistent');
    await expect(pushWith(bad, dev)).rejects.toMatchObject({ type: 'RegistryAuthError', nonRetryable: true, message: expect.stringMatching(/docker push .* failed/) });
  }, 60_000);

  test('the same push with the right credentials succeeds (the refusal above was the password)', async () => {
    await expect(pushWith(creds(), dev)).resolves.toMatchObject({ digest: expect.stringMatching(/^sha256:/) });
  }, 60_000);
});

describe('heartbeats while bytes flow', () => {
  test('a blob that takes several heartbeat timeouts to stream is reported on a timer, with blob n/m and bytes copied', async () => {
    const a = clientFor(A, 'dev', env);
    const v = tag();
    const size = 1280 * 1024;
    const img = await pushRandomImage(a, 'hb-src', v, size);
    // The source serves the big layer at 64 KiB per 100 ms: ~2 s for 1.25 MiB, against a 600 ms heartbeat timeout.
    const watch = watchedFetch({ throttle: { match: (p) => p.endsWith(`/blobs/${img.layer.digest}`), bytesPer100ms: 64 * 1024 } });
    const HEARTBEAT_TIMEOUT = 600;
    const mock = new MockActivityEnvironment({ heartbeatTimeoutMs: HEARTBEAT_TIMEOUT });
    const beats: { at: number; details: any }[] = [];
    mock.on('heartbeat', (details) => beats.push({ at: Date.now(), details }));
    const { copyImage } = createRegistryActivities({ registries: () => new OciRegistry(creds(), watch.impl) });
    const started = Date.now();
    const result = await mock.run(copyImage, { source: `${A.url}/hb-src@${img.digest}`, sourceRegistry: dev, target: `${B.url}/prod/hb:${v}`, targetRegistry: other, expectDigest: img.digest });
    const ended = Date.now();
    expect(result).toMatchObject({ digest: img.digest, blobsCopied: 2 });
    expect(ended - started).toBeGreaterThan(3 * HEARTBEAT_TIMEOUT);
    // No silence as long as the heartbeat timeout anywhere in the copy (the server would have killed the attempt).
    const times = [started, ...beats.map((b) => b.at), ended];
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    expect(Math.max(...gaps)).toBeLessThan(HEARTBEAT_TIMEOUT);
    // Beats in the middle of the big blob carry where the copy is.
    const mid = beats.map((b) => b.details).filter((d) => d.phase === 'blobs' && d.bytesCopied > 0 && d.bytesCopied < size);
    expect(mid.length).toBeGreaterThanOrEqual(3);
    expect(mid[0]).toMatchObject({ blob: expect.stringMatching(/^[12]\/2$/), bytesTotal: expect.any(Number), digest: img.layer.digest });
  });
});
