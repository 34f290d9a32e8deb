/**
 * Restart (issue #12): `stack down` then `stack up` brings pods, routes and metrics back. A release of the sample
 * chart runs on prod's real node behind Traefik (HTTPRoute on the stack's Gateway); `stackDown` (what `slipway stack
 * down` runs) must leave no process, no iptables rule and no network namespace of the stack behind, and `stackUp`
 * must bring the same release's pods back Running on the real node, answering through Traefik again.
 *
 * This tier stops the whole stack, so it is its own jest project and runs alone, after every other tier
 * (scripts/test.sh). Traffic goes only to 127.0.0.1 and to the stack's own pod addresses; every wait is bounded.
 */
import Docker from 'dockerode';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DockerImageBuilder } from '../../activities/docker/builder';
import { k8s } from '../../activities/kubernetes/client';
import { KubeCluster } from '../../activities/kubernetes/cluster';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { ensureRegistry, stackDown, stackUp } from '../../client/stack';
import { nodeLayout, REAL_NODE_PLACEMENT } from '../../client/stack/node';
import { pidAlive, slipwayHome } from '../../client/stack/process';
import { routerPorts } from '../../client/stack/router';
import { uniqueNamespace } from '../deploy-helpers';
import { eventually, ROOT } from '../helpers';
import { testStack } from '../setup/stack-info';

const run = promisify(execFile);
const stack = testStack();
const ns = uniqueNamespace('restart');
const HOST = `${ns}.slipway.test`;
const WEB = routerPorts('prod').web;
const node = nodeLayout('prod');
const core = () => KubeCluster.forKubeconfig(stack.kubeconfig).api(stack.contexts.prod, k8s.CoreV1Api);
/** The stack's Prometheus (client/stack/prometheus.ts), when this checkout has one. */
const PROMETHEUS_MODULE = join(ROOT, 'client', 'stack', 'prometheus.ts');
const withPrometheus = existsSync(PROMETHEUS_MODULE) ? test : test.skip;

/** One GET through Traefik's web entrypoint with the route's Host header. */
function viaGateway(): Promise<{ status: number; version: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: WEB, path: '/api/deliveries', headers: { host: HOST }, agent: false, timeout: 3_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, version: String(res.headers['x-delivery-version'] ?? '') }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, version: '' }));
    req.end();
  });
}
const answersViaGateway = () => eventually(async () => ((await viaGateway()).status === 200 ? true : undefined), 60_000, 250);

/** The release's pods, when all `want` are Running and Ready on the real node. */
const podsReady = (want: number) =>
  eventually(async () => {
    const pods = (await core().listNamespacedPod({ namespace: ns, labelSelector: 'app.kubernetes.io/instance=delivery' })).items.filter((p) => !p.metadata?.deletionTimestamp);
    const ready = pods.filter((p) => p.spec?.nodeName === node.nodeName && p.status?.phase === 'Running' && p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    return ready.length === want ? ready : undefined;
  }, 120_000, 500);

/** The processes in the real nodes' pod cgroups (the pods' containers). */
function podProcesses(): number[] {
  const walk = (dir: string): string[] => (existsSync(dir) ? [dir, ...readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).flatMap((d) => walk(join(dir, d.name)))] : []);
  return ['qa', 'prod'].flatMap((env) => walk(`/sys/fs/cgroup/pids/slipway-${env}`)).flatMap((d) => readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number));
}

/** Any process whose command line names the stack's state (its binaries, the nodes' sockets, dockerd's exec root). */
function processesOfTheStack(): string[] {
  const marks = [`${slipwayHome()}/`, '/run/slipway/', '/run/netns/slipway-', 'slipway-docker-exec'];
  const found: string[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' ').trim();
      if (Number(p) !== process.pid && marks.some((m) => cmd.includes(m))) found.push(`${p} ${cmd.slice(0, 160)}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

const netnsList = async () => (await run('ip', ['netns', 'list'])).stdout;
const hostIptables = async () => (await run('iptables-save')).stdout;
const mountsUnderRun = () => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((p) => p?.startsWith('/run/slipway/'));

let image: string;

beforeAll(async () => {
  // The whole stack as `slipway stack up` brings it (the global setup does not start the real nodes or routers).
  await stackUp();
  const credentials = new EnvCredentialStore({ SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username, SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password }, '/nonexistent');
  const builder = new DockerImageBuilder(new Docker({ socketPath: stack.docker.replace(/^unix:\/\//, '') }), credentials);
  const tag = `${stack.registry.url}/restart/delivery:test`;
  await builder.build({ contextDir: join(ROOT, 'services', 'delivery'), dockerfile: 'Dockerfile', tag, args: { VERSION: 'restart' }, labels: {} }, () => undefined);
  const { digest } = await builder.push(tag, { host: stack.registry.url, name: 'dev', type: 'oci', insecure: true }, () => undefined);
  image = digest;
  const values = {
    ...REAL_NODE_PLACEMENT,
    replicaCount: 2,
    image: { repository: `${stack.registry.url}/restart/delivery`, digest, tag: `restart@${digest}` },
    versionFromImage: true,
    metrics: { scrape: true },
    route: { enabled: true, hostnames: [HOST] },
  };
  const file = join(mkdtempSync(join(tmpdir(), 'slipway-restart-')), 'values.json');
  writeFileSync(file, JSON.stringify(values));
  const helm = join(slipwayHome(), 'bin', 'helm');
  await run(helm, ['upgrade', 'delivery', join(ROOT, 'services', 'delivery', 'chart'), '--install', '--kube-context', stack.contexts.prod, '--namespace', ns, '--create-namespace', '--values', file, '--wait', '--timeout', '90s'], { env: { ...process.env, KUBECONFIG: stack.kubeconfig }, timeout: 120_000 });
  await podsReady(2);
  await answersViaGateway();
}, 240_000);

afterAll(async () => {
  await core().deleteNamespace({ name: ns }).catch(() => undefined);
  // The global setup's second registry is not part of `stack up`; leave the stack as the run found it.
  await ensureRegistry('registry-b', 5001).catch(() => undefined);
});

test('stack down stops every process and removes the iptables rules and network namespaces', async () => {
  await podsReady(2);
  const pods = podProcesses();
  expect(pods.length).toBeGreaterThanOrEqual(2);
  const before = processesOfTheStack().join('\n');
  for (const daemon of ['kubelet', 'kube-proxy', 'containerd-shim-runc-v2', 'traefik', 'temporal', 'etcd', 'kube-apiserver', 'kwok', 'registry', 'dockerd']) expect(before).toContain(daemon);
  expect(await netnsList()).toContain(node.netns);
  expect(await hostIptables()).toContain('SLIPWAY-NODE');

  const stopped = await stackDown();
  expect(stopped).toEqual(expect.arrayContaining(['prod', 'prod: kubelet', 'prod: containerd', `prod: netns ${node.netns}`, 'slipway-prod', 'temporal']));

  expect(pods.filter(pidAlive)).toEqual([]);
  expect(podProcesses()).toEqual([]);
  expect(processesOfTheStack()).toEqual([]);
  expect(await netnsList()).not.toMatch(/slipway-/);
  const rules = await hostIptables();
  expect(rules).not.toMatch(/SLIPWAY-NODE|KUBE-|CNI-/);
  expect(mountsUnderRun()).toEqual([]);
  expect((await run('ip', ['-br', 'link'])).stdout).not.toMatch(/slw-/);
  expect((await run('ip', ['route'])).stdout).not.toContain(node.podCidr);
}, 180_000);

test('stack up brings the release back: its pods Running on the real node, answering through Traefik', async () => {
  const up = await stackUp();
  expect(up.clusters.actions).toEqual({ qa: 'started', prod: 'started' });
  expect(up.temporal.started).toBe(true);
  const pods = await podsReady(2);
  expect(pods.every((p) => p.status?.containerStatuses?.[0]?.imageID?.includes(image))).toBe(true);
  // Back on the bridge's range of the same node.
  for (const p of pods) expect(p.status?.podIP?.startsWith(node.podCidr.replace(/\.0\/24$/, '.'))).toBe(true);
  await answersViaGateway();
  const answer = await viaGateway();
  expect(answer).toEqual({ status: 200, version: 'restart' });
  // Straight to a pod too (the host's route to the pod range is back).
  const direct = await fetch(`http://${pods[0].status!.podIP}:8080/healthz`, { signal: AbortSignal.timeout(3_000) });
  expect(direct.status).toBe(200);
}, 240_000);

withPrometheus('the stack Prometheus scrapes the pods again after the restart', async () => {
  const { stackPrometheusUrl } = (await import(PROMETHEUS_MODULE)) as { stackPrometheusUrl: () => string };
  const since = Date.now() / 1000;
  const pods = (await podsReady(2)).map((p) => p.metadata!.name!);
  const upNow = await eventually(async () => {
    const res = await fetch(`${stackPrometheusUrl()}/api/v1/query?query=${encodeURIComponent(`up{namespace="${ns}"}`)}`, { signal: AbortSignal.timeout(3_000) });
    const body = (await res.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    const fresh = body.data.result.filter((r) => r.value[0] >= since && r.value[1] === '1' && pods.includes(r.metric.pod));
    return fresh.length === pods.length ? fresh : undefined;
  }, 60_000, 1_000);
  expect(upNow.length).toBe(2);
}, 90_000);
