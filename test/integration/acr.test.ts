/**
 * The ACR adapter. Azure cannot be reached from these machines, so this test points the real
 * @azure/arm-containerregistry client at a local HTTPS endpoint and checks the exact ARM request it sends
 * (path, api-version, bearer token, body) and that it follows the long-running operation to completion.
 * What it does not prove: that Azure accepts the request — that needs a real subscription.
 */
import { ContainerRegistryManagementClient } from '@azure/arm-containerregistry';
import type { TokenCredential } from '@azure/core-auth';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRegistryActivities } from '../../activities';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { registryFactory } from '../../activities/registry/factory';
import type { RegistryRef } from '../../workflows/types';

const SUB = '11111111-2222-3333-4444-555555555555';
const DIGEST = `sha256:${'d'.repeat(64)}`;
const recorded: { method: string; url: string; auth?: string; body: string }[] = [];
let server: Server;
let base: string;
let cert: string;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'slipway-arm-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      recorded.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body });
      if (req.method === 'POST' && req.url!.includes('/importImage')) {
        // ARM answers an import with 202 and an operation to poll.
        res.writeHead(202, { location: `${base}/operations/import-1`, 'retry-after': '0' }).end();
      } else if (req.url!.split('?')[0] === '/operations/import-1') {
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

const credential: TokenCredential = { getToken: async () => ({ token: 'arm-test-token', expiresOnTimestamp: Date.now() + 3600_000 }) };
const acr: RegistryRef = { name: 'acr', type: 'acr', host: 'myrepo.azurecr.io', insecure: false, acr: { subscriptionId: SUB, resourceGroup: 'rg-delivery', registryName: 'myrepo' } };

test('promotion within ACR is one importImage call by digest, NoForce, followed to completion', async () => {
  const arm = new ContainerRegistryManagementClient(credential, SUB, { endpoint: base, tlsOptions: { ca: cert } as any, updateIntervalInMs: 10 } as any);
  const { copyImage } = createRegistryActivities({ registries: registryFactory({ credentials: new EnvCredentialStore({}, '/nonexistent'), armClient: () => arm }) });
  const result = await copyImage({
    source: `myrepo.azurecr.io/delivery@${DIGEST}`,
    sourceRegistry: acr,
    target: 'myrepo.azurecr.io/prod/delivery:v1.0.2',
    targetRegistry: acr,
    expectDigest: DIGEST,
  });
  expect(result).toMatchObject({ method: 'acr-import', digest: DIGEST, target: 'myrepo.azurecr.io/prod/delivery:v1.0.2' });

  const post = recorded.find((r) => r.method === 'POST')!;
  const url = new URL(post.url, base);
  expect(url.pathname).toBe(`/subscriptions/${SUB}/resourceGroups/rg-delivery/providers/Microsoft.ContainerRegistry/registries/myrepo/importImage`);
  expect(url.searchParams.get('api-version')).toMatch(/^\d{4}-\d{2}-\d{2}/);
  expect(post.auth).toBe('Bearer arm-test-token');
  expect(JSON.parse(post.body)).toEqual({
    source: { resourceId: `/subscriptions/${SUB}/resourceGroups/rg-delivery/providers/Microsoft.ContainerRegistry/registries/myrepo`, sourceImage: `delivery@${DIGEST}` },
    targetTags: ['prod/delivery:v1.0.2'],
    mode: 'NoForce',
  });
  expect(recorded.some((r) => r.method === 'GET' && r.url.startsWith('/operations/import-1'))).toBe(true);
});

test('an import from another registry names it by URI and passes the worker-held credentials to ARM only', async () => {
  recorded.length = 0;
  const arm = new ContainerRegistryManagementClient(credential, SUB, { endpoint: base, tlsOptions: { ca: cert } as any, updateIntervalInMs: 10 } as any);
  const creds = new EnvCredentialStore({ SLIPWAY_REGISTRY_DEV_USERNAME: 'u', SLIPWAY_REGISTRY_DEV_PASSWORD: 'p4ss' }, '/nonexistent');
  const { copyImage } = createRegistryActivities({ registries: registryFactory({ credentials: creds, armClient: () => arm }) });
  await copyImage({
    source: `registry.example.com/delivery@${DIGEST}`,
    sourceRegistry: { name: 'dev', type: 'oci', host: 'registry.example.com', insecure: false },
    target: 'myrepo.azurecr.io/prod/delivery:v1.0.2',
    targetRegistry: acr,
  });
  const body = JSON.parse(recorded.find((r) => r.method === 'POST')!.body);
  expect(body.source).toEqual({ registryUri: 'registry.example.com', sourceImage: `delivery@${DIGEST}`, credentials: { username: 'u', password: 'p4ss' } });
});
