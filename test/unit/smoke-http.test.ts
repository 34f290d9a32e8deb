/**
 * The http smoke check's rules without a cluster: which hosts are cluster service names, how headers are validated
 * (field and rule named), how a Service's port resolves to ready EndpointSlice endpoints, and the activity itself
 * against a fake cluster port whose "endpoints" are local servers on 127.0.0.1 (the Host header kept as written).
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSmokeActivities } from '../../activities/deploy/smoke';
import { endpointsOf } from '../../activities/kubernetes/endpoints';
import type { K8s } from '../../activities/kubernetes/client';
import type { Cluster, ServiceEndpoints } from '../../activities/ports';
import { UsageError } from '../../model/errors';
import { parseConfig, planRelease } from '../../model/plan';
import { clusterServiceOf, smokeCheckOf, smokeConfigSchema, smokeHeaderProblem, type SmokeCheck } from '../../model/smoke';
import type { SmokeTestResult } from '../../model/types';
import { deployConfigText } from '../deploy-helpers';

describe('cluster service hosts', () => {
  test.each([
    ['delivery.shop.svc', { service: 'delivery', namespace: 'shop' }],
    ['delivery.shop.svc.cluster.local', { service: 'delivery', namespace: 'shop' }],
    ['Delivery.Shop.SVC.', { service: 'delivery', namespace: 'shop' }],
    ['a-b.c-d.svc', { service: 'a-b', namespace: 'c-d' }],
  ])('%s is a Service', (host, expected) => expect(clusterServiceOf(host)).toEqual(expected));
  test.each(['delivery', 'delivery.shop', 'delivery.shop.svc.example.com', 'x.delivery.shop.svc', '127.0.0.1', 'delivery.example.test', '-a.shop.svc', 'delivery.shop.svc.cluster.local.x'])(
    '%s is not',
    (host) => expect(clusterServiceOf(host)).toBeUndefined(),
  );
});

describe('headers', () => {
  test.each([
    ['Host', 'delivery.example.test'],
    ['Host', 'delivery.example.test:8080'],
    ['host', '{service}.{namespace}.example.test'],
    ['X-Canary', 'always'],
    ['Accept', 'text/plain, */*'],
  ])('%s: %s is fine', (name, value) => expect(smokeHeaderProblem(name, value)).toBeUndefined());
  test.each([
    ['X Bad', 'v', /HTTP token/],
    ['X-Evil', 'a\r\nSet-Cookie: x', /control characters or line breaks/],
    ['X-Pad', ' padded', /visible ASCII/],
    ['X-Empty', '', /visible ASCII/],
    ['Authorization', 'Bearer abc', /credentials/],
    ['cookie', 'a=b', /credentials/],
    ['X-Api-Key', 'abc', /credentials/],
    ['X-Auth-Token', 'abc', /credentials/],
    ['Transfer-Encoding', 'chunked', /set by the HTTP client/],
    ['Content-Length', '0', /set by the HTTP client/],
    ['Host', 'delivery.example.test/path', /host name or IPv4 address/],
    ['Host', 'user@delivery.example.test', /host name/],
    ['X-Long', 'x'.repeat(1025), /at most 1024/],
  ])('%s: value #%# is refused', (name, value, rule) => expect(smokeHeaderProblem(name, value)).toMatch(rule));

  const config = (check: string) => deployConfigText({ ns: 'u', prodDeploy: `{ timeout: 60s, smoke: [ { type: rollout }, ${check} ] }` });
  test('a refused header is named with its field path and rule in the config error', () => {
    const bad = (check: string) => () => parseConfig(config(check));
    expect(bad('{ type: http, url: "http://127.0.0.1:19290/healthz", headers: { Authorization: "Bearer x" } }')).toThrow(UsageError);
    expect(bad('{ type: http, url: "http://127.0.0.1:19290/healthz", headers: { Authorization: "Bearer x" } }')).toThrow(
      'environments.prod.deploy.smoke.1.headers.Authorization: carries credentials',
    );
    expect(bad('{ type: http, url: "http://127.0.0.1:19290/healthz", headers: { Host: "a b" } }')).toThrow('environments.prod.deploy.smoke.1.headers.Host: value must be a host name');
    expect(bad('{ type: http, url: "http://127.0.0.1:19290/healthz", headers: { Host: a.test, host: b.test } }')).toThrow('environments.prod.deploy.smoke.1.headers.host: given twice (also as "Host"');
    expect(bad('{ type: http, url: "http://me:pw@127.0.0.1:19290/healthz" }')).toThrow('environments.prod.deploy.smoke.1.url: must not carry a user or password');
  });

  test('placeholders are filled in the URL and the header values; durations become milliseconds', () => {
    const input = planRelease(parseConfig(config('{ type: http, url: "http://127.0.0.1:19290/healthz", headers: { Host: "{service}.{namespace}.example.test" }, timeout: 5s }')), {
      service: 'delivery',
      version: 'v1.0.0',
      requester: 'ci',
    });
    const prod = input.environments.find((e) => e.name === 'prod')!;
    expect(prod.deploy!.smoke).toEqual([
      { type: 'rollout' },
      { type: 'http', url: 'http://127.0.0.1:19290/healthz', headers: { Host: 'delivery.u.example.test' }, expectStatus: 200, timeoutMs: 5_000 },
    ]);
    expect(smokeCheckOf(smokeConfigSchema.parse({ type: 'http' }), 'delivery', 'shop')).toEqual({ type: 'http', url: 'http://delivery.shop.svc/healthz', expectStatus: 200, timeoutMs: 30_000 });
  });
});

describe('a Service port resolved to its ready endpoints', () => {
  const svc = (ports: K8s.V1ServicePort[]): K8s.V1Service => ({ spec: { type: 'ClusterIP', clusterIP: '10.0.0.12', ports } });
  const ep = (ip: string, ready: boolean | undefined, pod = `pod-${ip}`): K8s.V1Endpoint => ({ addresses: [ip], conditions: ready === undefined ? {} : { ready }, targetRef: { kind: 'Pod', name: pod } });
  const slice = (ports: K8s.DiscoveryV1EndpointPort[], endpoints: K8s.V1Endpoint[], addressType = 'IPv4'): K8s.V1EndpointSlice => ({ addressType, endpoints, ports });

  test('the named port: ready (or unset) endpoints only, each once, at the resolved target port', () => {
    const r = endpointsOf(
      svc([{ name: 'http', port: 80, targetPort: 'http' as never }, { name: 'admin', port: 9000, targetPort: 9001 as never }]),
      [
        slice([{ name: 'http', port: 8080 }, { name: 'admin', port: 9001 }], [ep('10.214.2.5', true), ep('10.214.2.6', false), ep('10.214.2.7', undefined)]),
        slice([{ name: 'http', port: 8080 }], [ep('10.214.2.5', true)]), // listed twice during a change
        slice([{ name: 'http', port: 8080 }], [ep('delivery.example.test', true)], 'FQDN'),
      ],
      80,
    );
    expect(r).toEqual({
      exists: true,
      type: 'ClusterIP',
      clusterIP: '10.0.0.12',
      ports: ['80/http', '9000/admin'],
      port: { name: 'http', port: 80, targetPort: 'http' },
      ready: [
        { ip: '10.214.2.5', port: 8080, pod: 'pod-10.214.2.5' },
        { ip: '10.214.2.7', port: 8080, pod: 'pod-10.214.2.7' },
      ],
      notReady: 1,
    });
    expect(endpointsOf(svc([{ name: 'http', port: 80 }, { name: 'admin', port: 9000 }]), [slice([{ name: 'admin', port: 9001 }], [ep('10.214.2.5', true)])], 9000).ready).toEqual([
      { ip: '10.214.2.5', port: 9001, pod: 'pod-10.214.2.5' },
    ]);
  });

  test('a single unnamed port matches the slice port with no name; a port the Service lacks resolves to nothing', () => {
    expect(endpointsOf(svc([{ port: 80, targetPort: 8080 as never }]), [slice([{ port: 8080 }], [ep('10.214.2.5', true)])], 80).ready).toEqual([{ ip: '10.214.2.5', port: 8080, pod: 'pod-10.214.2.5' }]);
    const missing = endpointsOf(svc([{ name: 'http', port: 80 }]), [slice([{ name: 'http', port: 8080 }], [ep('10.214.2.5', true)])], 8080);
    expect(missing.port).toBeUndefined();
    expect(missing.ready).toEqual([]);
  });
});

describe('the http smoke activity', () => {
  interface Seen {
    host?: string;
    path?: string;
    canary?: string;
  }
  const servers: Server[] = [];
  const seen: Seen[] = [];
  /** A local server standing in for one pod (or a Gateway): answers `status` and records what it was sent. */
  async function pod(status: number): Promise<number> {
    const s = createServer((req, res) => {
      seen.push({ host: req.headers.host, path: req.url, canary: req.headers['x-canary'] as string | undefined });
      res.writeHead(status).end('x');
    });
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return (s.address() as AddressInfo).port;
  }
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
    seen.length = 0;
  });

  const asked: string[] = [];
  const fakeCluster = (answer: () => ServiceEndpoints): Cluster =>
    ({
      async serviceEndpoints(t, service, port) {
        asked.push(`${t.context}/${t.namespace} ${service}:${port}`);
        return answer();
      },
    }) as Partial<Cluster> as Cluster;
  const run = (cluster: Cluster, check: Extract<SmokeCheck, { type: 'http' }>) => {
    const acts = createSmokeActivities({ cluster, deployer: {} as never, credentials: {} as never, pollMs: 50 });
    return new MockActivityEnvironment().run(acts.smokeTest, { service: 'delivery', environment: 'prod', target: { context: 'kwok-prod', namespace: 'shop' }, check }) as Promise<SmokeTestResult>;
  };
  const service = (ready: { ip: string; port: number; pod?: string }[], notReady = 0): ServiceEndpoints => ({
    exists: true,
    type: 'ClusterIP',
    clusterIP: '10.0.0.12',
    ports: ['80/http'],
    port: { name: 'http', port: 80, targetPort: 'http' },
    ready,
    notReady,
  });

  test('through the Service: every ready endpoint is called with the Host as written, in the namespace the host names', async () => {
    const [a, b] = [await pod(200), await pod(200)];
    asked.length = 0;
    const r = await run(fakeCluster(() => service([{ ip: '127.0.0.1', port: a, pod: 'delivery-a' }, { ip: '127.0.0.1', port: b, pod: 'delivery-b' }])), {
      type: 'http',
      url: 'http://delivery.other.svc.cluster.local/healthz?deep=1',
      expectStatus: 200,
      timeoutMs: 2_000,
    });
    expect(asked).toEqual(['kwok-prod/other delivery:80']);
    expect(seen).toEqual([
      { host: 'delivery.other.svc.cluster.local', path: '/healthz?deep=1' },
      { host: 'delivery.other.svc.cluster.local', path: '/healthz?deep=1' },
    ]);
    expect(r.detail).toBe('GET http://delivery.other.svc.cluster.local/healthz?deep=1 answered 200 from all 2 ready endpoints of Service other/delivery (ClusterIP 10.0.0.12:80 → target port http)');
  });

  test('through the Service: one endpoint answering 503 fails the check, naming it; no ready endpoint or no such Service fails too', async () => {
    const [good, sick] = [await pod(200), await pod(503)];
    const check = { type: 'http' as const, url: 'http://delivery.shop.svc/healthz', expectStatus: 200, timeoutMs: 600 };
    await expect(run(fakeCluster(() => service([{ ip: '127.0.0.1', port: good, pod: 'delivery-a' }, { ip: '127.0.0.1', port: sick, pod: 'delivery-b' }])), check)).rejects.toMatchObject({
      type: 'SmokeTestFailedError',
      message: expect.stringContaining(`1/2 ready endpoints of Service shop/delivery (ClusterIP 10.0.0.12:80 → target port http) failed: 127.0.0.1:${sick} (pod delivery-b) answered 503, expected 200 (for 600 ms)`),
    });
    await expect(run(fakeCluster(() => service([], 2)), check)).rejects.toMatchObject({ message: expect.stringContaining('Service shop/delivery port 80 has no ready endpoint (2 not ready)') });
    await expect(run(fakeCluster(() => ({ exists: false, ports: [], ready: [], notReady: 0 })), check)).rejects.toMatchObject({ message: expect.stringContaining('no Service shop/delivery in kwok-prod') });
    await expect(run(fakeCluster(() => ({ ...service([]), port: undefined })), { ...check, url: 'http://delivery.shop.svc:8080/healthz' })).rejects.toMatchObject({
      message: expect.stringContaining('Service shop/delivery has no TCP port 8080 (it has: 80/http)'),
    });
  });

  test('through a Gateway: the URL as written, with the Host (and other headers) of the check; the cluster is not asked', async () => {
    const gw = await pod(200);
    asked.length = 0;
    const r = await run(fakeCluster(() => service([])), {
      type: 'http',
      url: `http://127.0.0.1:${gw}/healthz`,
      headers: { Host: 'delivery.example.test', 'X-Canary': 'always' },
      expectStatus: 200,
      timeoutMs: 2_000,
    });
    expect(asked).toEqual([]);
    expect(seen).toEqual([{ host: 'delivery.example.test', path: '/healthz', canary: 'always' }]);
    expect(r.detail).toBe(`GET http://127.0.0.1:${gw}/healthz (Host: delivery.example.test, X-Canary: always) answered 200`);
    const sick = await pod(503);
    await expect(run(fakeCluster(() => service([])), { type: 'http', url: `http://127.0.0.1:${sick}/healthz`, headers: { Host: 'delivery.example.test' }, expectStatus: 200, timeoutMs: 500 })).rejects.toMatchObject({
      type: 'SmokeTestFailedError',
      message: expect.stringContaining(`GET http://127.0.0.1:${sick}/healthz (Host: delivery.example.test): answered 503, expected 200`),
    });
  });

  test('headers the schema refuses never reach the wire: the activity input is checked', async () => {
    await expect(run(fakeCluster(() => service([])), { type: 'http', url: 'http://127.0.0.1:1/healthz', headers: { 'X-Evil': 'a\r\nb' }, expectStatus: 200, timeoutMs: 500 })).rejects.toMatchObject({
      message: expect.stringContaining('headers.X-Evil'),
    });
  });
});
