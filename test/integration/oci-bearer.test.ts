/**
 * The OCI client against a real registry (Debian's docker-registry) configured for Bearer-token auth, with a token
 * service written here: the challenge/realm/scope dance, a cross-registry streaming copy from a Basic-auth
 * registry, and a mount within the token registry (which needs pull scope on the source repository too).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createSign, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerImageBuilder } from '../../activities/docker/builder';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { OciRegistry } from '../../activities/registry/oci';
import { OciRegistryClient } from '../../activities/registry/oci-client';
import { ensureDocker, ensureRegistry, type RegistryEndpoint } from '../../client/stack';
import { findBinary, portOpen, waitFor } from '../../client/stack/process';
import { dockerFromEnv } from '../../workers/builder';
import { ROOT, uniqueVersion } from '../helpers';
import { clientFor, pushRandomImage, watchedFetch } from '../registry-images';

const PORT = 5003;
const TOKEN_REG = `127.0.0.1:${PORT}`;
// The stack's Basic-auth registry and Docker engine (started if needed, reused when running).
let basic: RegistryEndpoint;
let dockerHost: string;
let credentials: EnvCredentialStore;
const tokenRequests: { scopes: string[]; user?: string }[] = [];
let tokenServer: Server;
let registry: ChildProcess;
let key: string;
let certDer: string;

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

function issueToken(scopes: string[]): string {
  const header = { alg: 'RS256', typ: 'JWT', x5c: [certDer] };
  const now = Math.floor(Date.now() / 1000);
  const access = scopes.map((s) => {
    const [type, name, actions] = s.split(':');
    return { type, name, actions: actions.split(',') };
  });
  const claims = { iss: 'slipway-test-issuer', sub: 'robot', aud: 'slipway-test-registry', exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const sig = createSign('RSA-SHA256').update(input).sign(key);
  return `${input}.${b64url(sig)}`;
}

beforeAll(async () => {
  [basic, { host: dockerHost }] = await Promise.all([ensureRegistry('registry', 5000), ensureDocker()]);
  credentials = new EnvCredentialStore(
    {
      SLIPWAY_REGISTRY_DEV_USERNAME: basic.username,
      SLIPWAY_REGISTRY_DEV_PASSWORD: basic.password,
      SLIPWAY_REGISTRY_TOKENREG_USERNAME: 'robot',
      SLIPWAY_REGISTRY_TOKENREG_PASSWORD: 'robot-secret',
    },
    '/nonexistent',
  );
  const dir = mkdtempSync(join(tmpdir(), 'slipway-token-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=slipway-test-token', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  key = readFileSync(join(dir, 'key.pem'), 'utf8');
  certDer = readFileSync(join(dir, 'cert.pem'), 'utf8').replace(/-----[A-Z ]+-----|\s/g, '');

  tokenServer = createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const auth = req.headers.authorization ?? '';
    const [user, pass] = Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString().split(':');
    if (user !== 'robot' || pass !== 'robot-secret') return void res.writeHead(401).end();
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    tokenRequests.push({ scopes, user });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: issueToken(scopes), expires_in: 300 }));
  });
  await new Promise<void>((r) => tokenServer.listen(0, '127.0.0.1', r));
  const realm = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/token`;

  writeFileSync(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log: { level: error }',
      `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} } }`,
      `http: { addr: "${TOKEN_REG}", secret: "test" }`,
      `auth: { token: { realm: "${realm}", service: slipway-test-registry, issuer: slipway-test-issuer, rootcertbundle: ${join(dir, 'cert.pem')} } }`,
      '',
    ].join('\n'),
  );
  registry = spawn(findBinary('docker-registry')!, ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  await waitFor('token-auth registry', () => portOpen(PORT), 20_000);
});

afterAll(async () => {
  registry?.kill('SIGKILL');
  await new Promise<void>((r) => tokenServer.close(() => r()));
});

test('anonymous access is challenged with a Bearer realm', async () => {
  const res = await fetch(`http://${TOKEN_REG}/v2/delivery/manifests/latest`);
  expect(res.status).toBe(401);
  expect(res.headers.get('www-authenticate')).toMatch(/^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/token",service="slipway-test-registry",scope="repository:delivery:pull"/);
});

test('copy from a Basic-auth registry into a Bearer-token registry, then mount within it', async () => {
  // Put an image in the Basic-auth registry with the real Docker engine.
  const docker = dockerFromEnv({ DOCKER_HOST: dockerHost });
  const builder = new DockerImageBuilder(docker, credentials);
  const version = uniqueVersion();
  const tag = `${basic.url}/bearer-src:${version}`;
  await builder.build({ contextDir: join(ROOT, 'services', 'delivery'), dockerfile: 'Dockerfile', tag, args: {}, labels: { 'org.opencontainers.image.version': version } }, () => undefined);
  const pushed = await builder.push(tag, { name: 'dev', type: 'oci', host: basic.url, insecure: true }, () => undefined);

  const oci = new OciRegistry(credentials);
  const tokenRef = { name: 'tokenreg', type: 'oci' as const, host: TOKEN_REG, insecure: true };
  const devRef = { name: 'dev', type: 'oci' as const, host: basic.url, insecure: true };
  const cross = await oci.copy({ source: `${basic.url}/bearer-src@${pushed.digest}`, sourceRegistry: devRef, target: `${TOKEN_REG}/delivery:${version}`, targetRegistry: tokenRef, expectDigest: pushed.digest }, () => undefined);
  expect(cross).toMatchObject({ digest: pushed.digest, blobsMounted: 0 });
  expect(cross.blobsCopied).toBeGreaterThanOrEqual(2);
  expect(tokenRequests.some((t) => t.scopes.includes('repository:delivery:pull,push'))).toBe(true);

  const within = await oci.copy({ source: `${TOKEN_REG}/delivery@${pushed.digest}`, sourceRegistry: tokenRef, target: `${TOKEN_REG}/prod/delivery:${version}`, targetRegistry: tokenRef, expectDigest: pushed.digest }, () => undefined);
  expect(within.blobsCopied).toBe(0);
  expect(within.bytesCopied).toBe(0);
  expect(within.blobsMounted).toBeGreaterThanOrEqual(2);
  // The mount's token carried pull scope on the source repository as well as push on the target.
  expect(tokenRequests.some((t) => t.scopes.includes('repository:prod/delivery:pull,push') && t.scopes.includes('repository:delivery:pull'))).toBe(true);

  const check = new OciRegistryClient({ host: TOKEN_REG, name: 'tokenreg' }, credentials);
  expect((await check.getManifest('prod/delivery', version)).digest).toBe(pushed.digest);
}, 120_000);

test('wrong credentials for the token service fail with a clear, non-retryable error', async () => {
  const bad = new OciRegistry(new EnvCredentialStore({ SLIPWAY_REGISTRY_TOKENREG_USERNAME: 'robot', SLIPWAY_REGISTRY_TOKENREG_PASSWORD: 'wrong' }, '/nonexistent'));
  const ref = { name: 'tokenreg', type: 'oci' as const, host: TOKEN_REG, insecure: true };
  await expect(bad.copy({ source: `${TOKEN_REG}/delivery:x`, sourceRegistry: ref, target: `${TOKEN_REG}/prod/delivery:x`, targetRegistry: ref }, () => undefined)).rejects.toMatchObject({
    type: 'RegistryAuthError',
    nonRetryable: true,
    message: expect.stringMatching(/token service .* answered 401/),
  });
});

test('under token auth the manifest is stored by digest and read back (pull scope) before the tag is written', async () => {
  const version = uniqueVersion();
  const src = await pushRandomImage(clientFor(basic, 'dev', { SLIPWAY_REGISTRY_DEV_USERNAME: basic.username, SLIPWAY_REGISTRY_DEV_PASSWORD: basic.password }), 'bearer-order', version);
  const watch = watchedFetch();
  const oci = new OciRegistry(credentials, watch.impl);
  const tokenRef = { name: 'tokenreg', type: 'oci' as const, host: TOKEN_REG, insecure: true };
  const devRef = { name: 'dev', type: 'oci' as const, host: basic.url, insecure: true };
  await oci.copy({ source: `${basic.url}/bearer-order:${version}`, sourceRegistry: devRef, target: `${TOKEN_REG}/prod/order:${version}`, targetRegistry: tokenRef, expectDigest: src.digest }, () => undefined);
  const writes = watch.log.filter((e) => e.path.startsWith('/v2/prod/order/manifests/') && e.status < 400).map((e) => `${e.method} ${e.path.split('/').pop()}`);
  expect(writes).toEqual([`PUT ${src.digest}`, `HEAD ${src.digest}`, `PUT ${version}`]);
  const check = new OciRegistryClient({ host: TOKEN_REG, name: 'tokenreg' }, credentials);
  expect(await check.manifestDigest('prod/order', version)).toBe(src.digest);
});
