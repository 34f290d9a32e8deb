/**
 * The real node of each local cluster (client/stack/node.ts): a pod of the sample image, built by Docker from
 * services/delivery and pulled by the node's containerd from the local registry by digest, runs on the real node,
 * gets an address from the bridge CNI, and answers HTTP through its Service (kube-proxy's iptables rules: the
 * NodePort on the node's address from the host, the ClusterIP from inside the node's network namespace).
 * Traffic stays on addresses inside the network namespace the stack created (see issue #12's network rule).
 */
import Docker from 'dockerode';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DockerImageBuilder } from '../../activities/docker/builder';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { k8s } from '../../activities/kubernetes/client';
import { KubeCluster } from '../../activities/kubernetes/cluster';
import { ensureRealNode, nodeLayout, REAL_NODE_PLACEMENT, stopRealNode, type RealNodeEndpoint } from '../../client/stack/node';
import { uniqueNamespace } from '../deploy-helpers';
import { eventually, ROOT } from '../helpers';
import { testStack } from '../setup/stack-info';

const run = promisify(execFile);
const stack = testStack();
const cluster = KubeCluster.forKubeconfig(stack.kubeconfig);
const credentials = new EnvCredentialStore({ SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username, SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password }, '/nonexistent');
const namespace = uniqueNamespace('real-node');
const nodes: Record<string, RealNodeEndpoint> = {};
let image: string;

/** The sample image, built from its Dockerfile and pushed; returns `registry/repo@digest`. */
async function pushSampleImage(): Promise<string> {
  const docker = new Docker({ socketPath: stack.docker.replace(/^unix:\/\//, '') });
  const builder = new DockerImageBuilder(docker, credentials);
  const tag = `${stack.registry.url}/real-node/delivery:test`;
  await builder.build({ contextDir: join(ROOT, 'services', 'delivery'), dockerfile: 'Dockerfile', tag, args: { VERSION: 'real-node' }, labels: {} }, () => undefined);
  const { digest } = await builder.push(tag, { host: stack.registry.url, name: 'dev', type: 'oci', insecure: true }, () => undefined);
  return `${stack.registry.url}/real-node/delivery@${digest}`;
}

const core = (env: string) => cluster.api(stack.contexts[env], k8s.CoreV1Api);

/** The sample pod (readiness probe on /healthz) and a NodePort Service in front of it, on the env's real node. */
async function deploySample(env: string) {
  const labels = { app: 'delivery-real' };
  await core(env).createNamespacedPod({
    namespace,
    body: {
      metadata: { name: 'delivery', labels },
      spec: {
        ...REAL_NODE_PLACEMENT,
        containers: [{ name: 'delivery', image, ports: [{ containerPort: 8080 }], readinessProbe: { httpGet: { path: '/healthz', port: 8080 as never }, periodSeconds: 1 } }],
      },
    },
  });
  return core(env).createNamespacedService({
    namespace,
    body: { metadata: { name: 'delivery' }, spec: { type: 'NodePort', selector: labels, ports: [{ port: 80, targetPort: 8080 as never }] } },
  });
}

/** Waits until the pod is Ready (the readiness probe is executed by the kubelet, not simulated). */
const readyPod = (env: string) =>
  eventually(async () => {
    const p = await core(env).readNamespacedPod({ name: 'delivery', namespace });
    return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? p : undefined;
  }, 120_000, 500);

/** GET through the Service's NodePort on the node's address (routed from the host into the node's namespace). */
const viaNodePort = (env: string, nodePort: number) =>
  eventually(async () => {
    const res = await fetch(`http://${nodes[env].nodeIp}:${nodePort}/api/deliveries`, { signal: AbortSignal.timeout(3_000) }).catch(() => undefined);
    return res?.ok ? res.json() : undefined;
  }, 30_000, 500);

beforeAll(async () => {
  for (const env of ['qa', 'prod']) nodes[env] = await ensureRealNode(env, stack.registry);
  image = await pushSampleImage();
  for (const env of ['qa', 'prod']) await core(env).createNamespace({ body: { metadata: { name: namespace } } });
}, 300_000);

afterAll(async () => {
  for (const env of ['qa', 'prod']) await core(env).deleteNamespace({ name: namespace }).catch(() => undefined);
});

describe.each(['qa', 'prod'])('the real node of %s', (env) => {
  test('is registered, labelled, tainted and Ready beside the kwok nodes', async () => {
    const all = (await core(env).listNode()).items;
    const real = all.find((n) => n.metadata?.name === nodes[env].nodeName)!;
    expect(real.metadata?.labels).toMatchObject({ 'slipway.dev/node': 'real' });
    expect(real.spec?.taints).toEqual(expect.arrayContaining([expect.objectContaining({ key: 'slipway.dev/node', value: 'real', effect: 'NoSchedule' })]));
    expect(real.status?.nodeInfo).toMatchObject({ kubeletVersion: 'v1.36.3', containerRuntimeVersion: expect.stringMatching(/^containerd:\/\/1\.6\./) });
    expect(real.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(all.filter((n) => n.metadata?.annotations?.['kwok.x-k8s.io/node'] === 'fake').length).toBeGreaterThanOrEqual(1);
  });

  test('runs a pod of the sample image, pulled by digest, that answers through its Service', async () => {
    const service = await deploySample(env);
    const pod = await readyPod(env);
    expect(pod.spec?.nodeName).toBe(nodes[env].nodeName);
    expect(pod.status?.phase).toBe('Running');
    // The kubelet reports the digest containerd resolved: the one that was pushed.
    expect(pod.status?.containerStatuses?.[0]?.imageID).toContain(image.split('@')[1]);
    // Its address comes from the bridge CNI's range for this node.
    expect(pod.status?.podIP?.startsWith(nodeLayout(env).podCidr.replace(/\.0\/24$/, '.'))).toBe(true);

    // From the host: straight to the pod, and through the Service's NodePort.
    const direct = await fetch(`http://${pod.status!.podIP}:8080/healthz`, { signal: AbortSignal.timeout(5_000) });
    expect(direct.status).toBe(200);
    expect(await viaNodePort(env, service.spec!.ports![0].nodePort!)).toMatchObject({ version: 'real-node', status: 200 });

    // Through the ClusterIP, inside the node's network namespace (both clusters use the same Service range, so the
    // host has no route to it).
    const { stdout } = await run('nsenter', [`--net=/run/netns/${nodes[env].netns}`, '--', 'curl', '-sS', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', `http://${service.spec!.clusterIP}/healthz`]);
    expect(stdout).toBe('200');
  }, 180_000);
});

test('stop removes the namespace, route and nat rule; start brings the node and its pod back', async () => {
  const env = 'prod';
  const l = nodeLayout(env);
  const service = await core(env).readNamespacedService({ name: 'delivery', namespace });
  expect(await stopRealNode(env)).toEqual(['kube-proxy', 'kubelet', 'containerd', `netns ${l.netns}`]);
  expect(existsSync(`/run/netns/${l.netns}`)).toBe(false);
  expect((await run('ip', ['route', 'show', l.podCidr])).stdout.trim()).toBe('');
  expect((await run('iptables', ['-t', 'nat', '-S'])).stdout).not.toContain(l.hostVeth);
  // The other cluster's node is untouched.
  expect(existsSync(`/run/netns/${nodeLayout('qa').netns}`)).toBe(true);

  nodes[env] = await ensureRealNode(env, stack.registry);
  expect(nodes[env].actions).toEqual({ containerd: 'started', kubelet: 'started', 'kube-proxy': 'started' });
  // The kubelet finds the pod still bound to its node and starts it again.
  await readyPod(env);
  expect(await viaNodePort(env, service.spec!.ports![0].nodePort!)).toMatchObject({ version: 'real-node' });
}, 240_000);
