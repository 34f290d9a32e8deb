/**
 * The ACR adapter. Azure cannot be reached from these machines, so this test points the real
 * @azure/arm-containerregistry client at a local HTTPS endpoint that plays ARM: it checks the exact request the
 * client sends (path, api-version, bearer token, body), follows the long-running operation, and carries the import
 * out in the real local registry (127.0.0.1:5000 plays the ACR login server, :5001 another registry) — refusing,
 * as ACR does in NoForce mode, to overwrite an existing tag. The adapter reads the result back through the
 * registry's own API, so the tests can make the "import" land something else and see it caught.
 * What it does not prove: that Azure accepts the request, or the exact wording of Azure's errors.
 */
import { ContainerRegistryManagementClient } from '@azure/arm-containerregistry';
import type { TokenCredential } from '@azure/core-auth';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createRegistryActivities } from '../../activities';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { registryFactory } from '../../activities/registry/factory';
import { copyManifest, type OciRegistryClient } from '../../activities/registry/oci-client';
import type { RegistryEndpoint } from '../../client/stack';
import type { RegistryRef } from '../../model/types';
import { clientFor, localRegistries, pushRandomImage } from '../registry-images';

const SUB = '11111111-2222-3333-4444-555555555555';
const recorded: { method: string; url: string; auth?: string; body: string }[] = [];
let server: Server;
let base: string;
let cert: string;
let A: RegistryEndpoint;
let B: RegistryEndpoint;
let env: Record<string, string>;
let acr: RegistryRef;
let loginServer: OciRegistryClient;

/** How the fake ARM answers the next importImage: do it, fail with a status, or land another image than asked. */
let behaviour: { kind: 'import' } | { kind: 'status'; status: number; code: string } | { kind: 'land'; repository: string; reference: string } = { kind: 'import' };
/** When the running operation may report success (a slow import keeps answering 202 until then). */
let operationDoneAt = 0;

const tag = () => `v1.0.${Date.now() % 1e6}-${randomBytes(3).toString('hex')}`;

async function performImport(body: any): Promise<{ status: number; error?: { code: string; message: string } }> {
  const [targetRepo, targetTag] = body.targetTags[0].split(':');
  if (body.mode === 'NoForce' && (await loginServer.manifestDigest(targetRepo, targetTag))) {
    return { status: 409, error: { code: 'Conflict', message: `Tag ${body.targetTags[0]} already exists in target registry.` } };
  }
  const [repo, ref] = body.source.sourceImage.includes('@') ? body.source.sourceImage.split('@') : body.source.sourceImage.split(':');
  let src = body.source.resourceId ? loginServer : clientFor(B, 'other', env);
  let source = { repository: repo, reference: ref };
  if (behaviour.kind === 'land') {
    src = loginServer;
    source = { repository: behaviour.repository, reference: behaviour.reference };
  }
  await copyManifest({ client: src, ...source }, { client: loginServer, repository: targetRepo, reference: targetTag });
  return { status: 202 };
}

beforeAll(async () => {
  ({ a: A, b: B, env } = await localRegistries());
  acr = { name: 'acr', type: 'acr', host: A.url, insecure: true, acr: { subscriptionId: SUB, resourceGroup: 'rg-delivery', registryName: 'myrepo' } };
  env = { ...env, SLIPWAY_REGISTRY_ACR_USERNAME: A.username, SLIPWAY_REGISTRY_ACR_PASSWORD: A.password };
  loginServer = clientFor(A, 'acr', env);
  const dir = mkdtempSync(join(tmpdir(), 'slipway-arm-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', async () => {
      recorded.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body });
      if (req.method === 'POST' && req.url!.includes('/importImage')) {
        if (behaviour.kind === 'status') {
          return void res.writeHead(behaviour.status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: behaviour.code, message: `ARM says ${behaviour.code}` } }));
        }
        const r = await performImport(JSON.parse(body)).catch((err) => ({ status: 500, error: { code: 'InternalServerError', message: String(err) } }));
        if (r.error) return void res.writeHead(r.status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: r.error }));
        // ARM answers an import with 202 and an operation to poll.
        res.writeHead(202, { location: `${base}/operations/import-1`, 'retry-after': '0' }).end();
      } else if (req.url!.split('?')[0] === '/operations/import-1') {
        if (Date.now() < operationDoneAt) return void res.writeHead(202, { location: `${base}/operations/import-1`, 'retry-after': '0' }).end();
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } else {
        res.writeHead(404).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((r) => server.close(() => r())));
beforeEach(() => {
  recorded.length = 0;
  behaviour = { kind: 'import' };
  operationDoneAt = 0;
});

const credential: TokenCredential = { getToken: async () => ({ token: 'arm-test-token', expiresOnTimestamp: Date.now() + 3600_000 }) };
const activities = () => {
  const arm = new ContainerRegistryManagementClient(credential, SUB, { endpoint: base, tlsOptions: { ca: cert } as any, updateIntervalInMs: 10, retryOptions: { maxRetries: 0 } } as any);
  return createRegistryActivities({ registries: registryFactory({ credentials: new EnvCredentialStore(env, '/nonexistent'), armClient: () => arm }) });
};

test('promotion within ACR is one importImage call by digest, NoForce, followed to completion and read back by digest', async () => {
  const v = tag();
  const img = await pushRandomImage(loginServer, 'delivery', v);
  const result = await activities().copyImage({
    source: `${A.url}/delivery@${img.digest}`,
    sourceRegistry: acr,
    target: `${A.url}/prod/delivery:${v}`,
    targetRegistry: acr,
    expectDigest: img.digest,
  });
  expect(result).toMatchObject({ method: 'acr-import', digest: img.digest, target: `${A.url}/prod/delivery:${v}` });

  const post = recorded.find((r) => r.method === 'POST')!;
  const url = new URL(post.url, base);
  expect(url.pathname).toBe(`/subscriptions/${SUB}/resourceGroups/rg-delivery/providers/Microsoft.ContainerRegistry/registries/myrepo/importImage`);
  expect(url.searchParams.get('api-version')).toMatch(/^\d{4}-\d{2}-\d{2}/);
  expect(post.auth).toBe('Bearer arm-test-token');
  expect(JSON.parse(post.body)).toEqual({
    source: { resourceId: `/subscriptions/${SUB}/resourceGroups/rg-delivery/providers/Microsoft.ContainerRegistry/registries/myrepo`, sourceImage: `delivery@${img.digest}` },
    targetTags: [`prod/delivery:${v}`],
    mode: 'NoForce',
  });
  expect(recorded.some((r) => r.method === 'GET' && r.url.startsWith('/operations/import-1'))).toBe(true);
});

test('an import from another registry names it by URI, by digest, and passes the worker-held credentials to ARM only', async () => {
  const v = tag();
  const img = await pushRandomImage(clientFor(B, 'other', env), 'delivery', v);
  await activities().copyImage({
    source: `${B.url}/delivery:${v}`,
    sourceRegistry: { name: 'other', type: 'oci', host: B.url, insecure: true },
    target: `${A.url}/prod/delivery:${v}`,
    targetRegistry: acr,
    expectDigest: img.digest,
  });
  const body = JSON.parse(recorded.find((r) => r.method === 'POST')!.body);
  expect(body.source).toEqual({ registryUri: B.url, sourceImage: `delivery@${img.digest}`, credentials: { username: B.username, password: B.password } });
  expect(await loginServer.manifestDigest('prod/delivery', v)).toBe(img.digest);
});

test('NoForce onto a tag that holds another image fails at once: TagExistsError, non-retryable, naming the tag', async () => {
  const v = tag();
  const img = await pushRandomImage(loginServer, 'delivery', v);
  const squatter = await pushRandomImage(loginServer, 'prod/delivery', v);
  await expect(
    activities().copyImage({ source: `${A.url}/delivery@${img.digest}`, sourceRegistry: acr, target: `${A.url}/prod/delivery:${v}`, targetRegistry: acr, expectDigest: img.digest }),
  ).rejects.toMatchObject({
    type: 'TagExistsError',
    nonRetryable: true,
    message: expect.stringContaining(`tag prod/delivery:${v} already exists at ${squatter.digest}`),
  });
  expect(await loginServer.manifestDigest('prod/delivery', v)).toBe(squatter.digest);
});

test('a retried import that finds its own digest under the tag (the first attempt landed) succeeds', async () => {
  const v = tag();
  const img = await pushRandomImage(loginServer, 'delivery', v);
  const input = { source: `${A.url}/delivery@${img.digest}`, sourceRegistry: acr, target: `${A.url}/prod/delivery:${v}`, targetRegistry: acr, expectDigest: img.digest };
  await activities().copyImage(input);
  await expect(activities().copyImage(input)).resolves.toMatchObject({ digest: img.digest });
});

test('an import that lands another digest than the release’s fails the stage: DigestMismatchError, non-retryable', async () => {
  const v = tag();
  const img = await pushRandomImage(loginServer, 'delivery', v);
  const other = await pushRandomImage(loginServer, 'delivery', `${v}-other`);
  behaviour = { kind: 'land', repository: 'delivery', reference: other.digest };
  await expect(
    activities().copyImage({ source: `${A.url}/delivery@${img.digest}`, sourceRegistry: acr, target: `${A.url}/prod/delivery:${v}`, targetRegistry: acr, expectDigest: img.digest }),
  ).rejects.toMatchObject({
    type: 'DigestMismatchError',
    nonRetryable: true,
    message: expect.stringContaining(`is ${other.digest} after the import, the release is ${img.digest}`),
  });
});

test.each([
  [403, 'AuthorizationFailed', 'RegistryAuthError', true],
  [401, 'InvalidAuthenticationToken', 'RegistryAuthError', true],
  [404, 'ResourceNotFound', 'ImageNotFoundError', true],
  [503, 'ServiceUnavailable', 'RegistryUnavailableError', false],
])('ARM answering %i (%s) → %s, nonRetryable %s', async (status, code, type, nonRetryable) => {
  behaviour = { kind: 'status', status, code };
  const digest = `sha256:${'d'.repeat(64)}`;
  await expect(
    activities().copyImage({ source: `${A.url}/delivery@${digest}`, sourceRegistry: acr, target: `${A.url}/prod/delivery:${tag()}`, targetRegistry: acr, expectDigest: digest }),
  ).rejects.toMatchObject({ type, nonRetryable });
});

test('a long import heartbeats on a timer while ARM reports it running', async () => {
  const v = tag();
  const img = await pushRandomImage(loginServer, 'delivery', v);
  operationDoneAt = Date.now() + 2_000;
  const HEARTBEAT_TIMEOUT = 600;
  const mock = new MockActivityEnvironment({ heartbeatTimeoutMs: HEARTBEAT_TIMEOUT });
  const beats: number[] = [];
  mock.on('heartbeat', () => beats.push(Date.now()));
  const started = Date.now();
  await mock.run(activities().copyImage, { source: `${A.url}/delivery@${img.digest}`, sourceRegistry: acr, target: `${A.url}/prod/delivery:${v}`, targetRegistry: acr, expectDigest: img.digest });
  const times = [started, ...beats, Date.now()];
  expect(times[times.length - 1] - started).toBeGreaterThan(3 * HEARTBEAT_TIMEOUT);
  expect(Math.max(...times.slice(1).map((t, i) => t - times[i]))).toBeLessThan(HEARTBEAT_TIMEOUT);
});
