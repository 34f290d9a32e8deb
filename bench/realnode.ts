/**
 * Pod start on the real node (`npm run bench -- realnode [n]`): a pod of the sample image, pulled by digest from the
 * local registry, from create to the first HTTP 200 through its pod IP, next to `docker run` of the same image on the
 * private Docker engine, from the command to the first HTTP 200 on loopback. Goal (issue #12): pod ≤ 3× docker run.
 *
 * The first pod of the run pulls the image into the node's containerd if it lacks it and is reported apart; the measured
 * pods and containers both start from an image already on their machine, as Docker's was built there. Traffic goes
 * only to 127.0.0.1 and to the pod CIDR of the network namespace the stack created; every wait is bounded.
 */
import Docker from 'dockerode';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DockerImageBuilder } from '../activities/docker/builder';
import { k8s } from '../activities/kubernetes/client';
import { KubeCluster } from '../activities/kubernetes/cluster';
import { EnvCredentialStore } from '../activities/registry/credentials';
import { ensureDocker, ensureRegistry } from '../client/stack';
import { ensureClusters } from '../client/stack/kubernetes';
import { ensureRealNode, nodeLayout, REAL_NODE_PLACEMENT } from '../client/stack/node';
import { findBinary } from '../client/stack/process';
import { dockerFromEnv } from '../workers/builder';

const run = promisify(execFile);
const print = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
};
export const show = (xs: number[]) => {
  const { min, median, max } = stats(xs);
  return `min ${min.toFixed(0).padStart(5)}  median ${median.toFixed(0).padStart(5)}  max ${max.toFixed(0).padStart(5)} ms`;
};

/** Polls `probe` until it returns a value; bounded by `timeoutMs`. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    await sleep(everyMs);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

const http200 = (url: string) => until(`HTTP 200 from ${url}`, async () => ((await fetch(url, { signal: AbortSignal.timeout(1_000) })).status === 200 ? true : undefined), 60_000, 10);

/** A free loopback port for a host-network container. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export async function realNodeBench(n: number, root: string): Promise<void> {
  const reg = await ensureRegistry('registry', 5000);
  const docker = await ensureDocker();
  const clusters = await ensureClusters(['qa']);
  const node = await ensureRealNode('qa', reg);
  const credentials = new EnvCredentialStore({ SLIPWAY_REGISTRY_DEV_USERNAME: reg.username, SLIPWAY_REGISTRY_DEV_PASSWORD: reg.password }, '/nonexistent');
  const dockerClient: Docker = dockerFromEnv({ DOCKER_HOST: docker.host });
  const builder = new DockerImageBuilder(dockerClient, credentials);
  const tag = `${reg.url}/bench/delivery:realnode`;
  await builder.build({ contextDir: join(root, 'services', 'delivery'), dockerfile: 'Dockerfile', tag, args: { VERSION: 'bench' }, labels: {} }, () => undefined);
  const { digest } = await builder.push(tag, { host: reg.url, name: 'dev', type: 'oci', insecure: true }, () => undefined);
  const image = `${reg.url}/bench/delivery@${digest}`;

  const core = KubeCluster.forKubeconfig(clusters.kubeconfig).api(clusters.contexts.qa, k8s.CoreV1Api);
  const namespace = `bench-realnode-${Date.now().toString(36)}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });

  /**
   * A deleted pod leaves the API before the kubelet has torn it down (containers stopped, CNI DEL); `docker rm -f`
   * returns only after. The next pod starts on an idle node, as the next container does: this waits until no task of
   * the pod runs in the node's containerd and its network namespace is gone. (The containers themselves stay until
   * the kubelet's container GC, once a minute.)
   */
  const ctr = (args: string[]) => run(findBinary('ctr') ?? 'ctr', ['--address', nodeLayout('qa').containerdSock, '-n', 'k8s.io', ...args]).then((r) => r.stdout);
  const podTornDown = (uid: string) =>
    until(`pod ${uid} torn down on the node`, async () => {
      const ids = (await ctr(['containers', 'ls', '-q', `labels."io.kubernetes.pod.uid"==${uid}`])).split('\n').filter(Boolean);
      const tasks = (await ctr(['tasks', 'ls'])).split('\n').filter((l) => ids.some((id) => l.startsWith(id)) && /\bRUNNING\b/.test(l));
      const netns = await Promise.all(ids.map(async (id) => {
        const spec = JSON.parse(await ctr(['containers', 'info', id])) as { Spec?: { linux?: { namespaces?: { type: string; path?: string }[] } } };
        return spec.Spec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
      }));
      return tasks.length === 0 && !netns.some((path) => path && existsSync(path)) ? true : undefined;
    }, 60_000, 50);

  /** create → Running (pod IP known) → first 200 on /healthz through the pod IP; then the pod is deleted. */
  const podStart = async (name: string) => {
    const t0 = performance.now();
    const created = await core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name },
        spec: {
          ...REAL_NODE_PLACEMENT,
          // As the sample chart's pods (services/delivery/chart): no service account token. A pod with any volume
          // waits for the kubelet's volume manager, which checks for mounted volumes every 300 ms (hard-coded).
          automountServiceAccountToken: false,
          terminationGracePeriodSeconds: 0,
          containers: [{ name: 'delivery', image, imagePullPolicy: 'IfNotPresent', ports: [{ containerPort: 8080 }] }],
        },
      },
    });
    const ip = await until(`pod ${name} Running`, async () => {
      const p = await core.readNamespacedPod({ name, namespace });
      return p.status?.phase === 'Running' && p.status.podIP ? p.status.podIP : undefined;
    }, 120_000, 20);
    const running = performance.now() - t0;
    await http200(`http://${ip}:8080/healthz`);
    const total = performance.now() - t0;
    await core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0 });
    await until(`pod ${name} gone`, async () => ((await core.readNamespacedPod({ name, namespace }).then(() => true, () => false)) ? undefined : true), 60_000, 100);
    await podTornDown(created.metadata!.uid!);
    return { running, total };
  };

  /** `docker run -d` on the host network (the private engine has no bridge) → first 200 on loopback; then removed. */
  const dockerRun = async (name: string) => {
    const port = await freePort();
    const t0 = performance.now();
    const { stdout } = await run('docker', ['run', '-d', '--name', name, '--network', 'host', '-e', `LISTEN=127.0.0.1:${port}`, image], { env: { ...process.env, DOCKER_HOST: docker.host }, timeout: 60_000 });
    const started = performance.now() - t0;
    await http200(`http://127.0.0.1:${port}/healthz`);
    const total = performance.now() - t0;
    await dockerClient.getContainer(stdout.trim()).remove({ force: true });
    return { started, total };
  };

  try {
    const cold = await podStart('delivery-cold');
    await dockerRun(`bench-realnode-warm-${Date.now().toString(36)}`); // warm-up: CLI and engine caches, not counted
    const pod = { running: [] as number[], total: [] as number[] };
    const dock = { started: [] as number[], total: [] as number[] };
    // Alternating, so drift on the machine falls on both sides.
    for (let i = 0; i < n; i++) {
      const p = await podStart(`delivery-${i}`);
      pod.running.push(p.running);
      pod.total.push(p.total);
      const d = await dockerRun(`bench-realnode-${Date.now().toString(36)}-${i}`);
      dock.started.push(d.started);
      dock.total.push(d.total);
    }
    print(`realnode: pod start on ${node.nodeName} (kubelet + containerd + bridge CNI) vs docker run on the private engine, sample image by digest, ${n} runs each, alternating`);
    print(`  first pod (containerd pulls the image if it lacks it; not counted): Running ${cold.running.toFixed(0)} ms, first 200 ${cold.total.toFixed(0)} ms`);
    print(`  pod: create → Running               ${show(pod.running)}`);
    print(`  pod: create → first 200 (pod IP)    ${show(pod.total)}`);
    print(`  docker run -d (command returns)     ${show(dock.started)}`);
    print(`  docker run → first 200 (loopback)   ${show(dock.total)}`);
    const ratio = stats(pod.total).median / stats(dock.total).median;
    print(`  ratio of medians (pod / docker run): ${ratio.toFixed(2)}  (goal ≤ 3: ${ratio <= 3 ? 'met' : 'NOT met'})`);
  } finally {
    await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  }
}
