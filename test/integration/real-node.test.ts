/**
 * The real node of the local QA cluster (client/stack/node.ts): a pod of the sample image, built by Docker from
 * services/delivery and pulled by the node's containerd from the local registry by digest, runs on the real node,
 * gets an address from the bridge CNI, and answers HTTP through its Service (kube-proxy's iptables rules: the
 * NodePort on the node's address from the host, the ClusterIP from inside the node's network namespace).
 * Traffic stays on addresses inside the network namespace the stack created (see issue #12's network rule).
 */
import Docker from 'dockerode';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DockerImageBuilder } from '../../activities/docker/builder';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { k8s } from '../../activities/kubernetes/client';
import { KubeCluster } from '../../activities/kubernetes/cluster';
import { ensureRealNode, nodeLayout, REAL_NODE_PLACEMENT, type RealNodeEndpoint } from '../../client/stack/node';
import { uniqueNamespace } from '../deploy-helpers';
import { eventually, ROOT } from '../helpers';
import { testStack } from '../setup/stack-info';

const run = promisify(execFile);
const stack = testStack();
const env = 'qa';
const namespace = uniqueNamespace('real-node');
const cluster = KubeCluster.forKubeconfig(stack.kubeconfig);
const core = cluster.api(stack.contexts[env], k8s.CoreV1Api);
const credentials = new EnvCredentialStore({ SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username, SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password }, '/nonexistent');
let node: RealNodeEndpoint;
let image: string;

/** The sample image, built from its Dockerfile and pushed; returns `registry/repo@digest`. */
async function pushSampleImage(): Promise<string> {
  const docker = new Docker({ socketPath: stack.docker.replace(/^unix:\/\//, '') });
  const builder = new DockerImageBuilder(docker, credentials);
  const tag = `${stack.registry.url}/real-node/delivery:test`;
  await builder.build({ contextDir: join(ROOT, 'services', 'delivery'), dockerfile: 'Dockerfile', tag, args: { VERSION: 'real-node' }, labels: {} }, () => undefined);
  const { digest } = await builder.push(tag, { host: stack.registry.url, name: 'dev' }, () => undefined);
  return `${stack.registry.url}/real-node/delivery@${digest}`;
}

beforeAll(async () => {
  node = await ensureRealNode(env, stack.registry);
  image = await pushSampleImage();
  await core.createNamespace({ body: { metadata: { name: namespace } } });
}, 240_000);

afterAll(async () => {
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
});

test('the real node is registered, labelled, tainted and Ready; the kwok nodes are still there', async () => {
  const nodes = (await core.listNode()).items;
  const real = nodes.find((n) => n.metadata?.name === node.nodeName)!;
  expect(real.metadata?.labels).toMatchObject({ 'slipway.dev/node': 'real' });
  expect(real.spec?.taints).toEqual(expect.arrayContaining([expect.objectContaining({ key: 'slipway.dev/node', value: 'real', effect: 'NoSchedule' })]));
  expect(real.status?.nodeInfo).toMatchObject({ kubeletVersion: 'v1.36.3', containerRuntimeVersion: expect.stringMatching(/^containerd:\/\/1\.6\./) });
  expect(real.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  expect(nodes.filter((n) => n.metadata?.annotations?.['kwok.x-k8s.io/node'] === 'fake').length).toBeGreaterThanOrEqual(1);
});

test('a pod of the sample image, pulled by digest, runs on the real node and answers through its Service', async () => {
  const labels = { app: 'delivery-real' };
  await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name: 'delivery', labels },
      spec: {
        ...REAL_NODE_PLACEMENT,
        containers: [{
          name: 'delivery',
          image,
          ports: [{ containerPort: 8080 }],
          readinessProbe: { httpGet: { path: '/healthz', port: 8080 as never }, periodSeconds: 1 },
        }],
      },
    },
  });
  const service = await core.createNamespacedService({
    namespace,
    body: { metadata: { name: 'delivery' }, spec: { type: 'NodePort', selector: labels, ports: [{ port: 80, targetPort: 8080 as never }] } },
  });

  // Running and Ready on the real node (the readiness probe is executed by the kubelet, not simulated).
  const pod = await eventually(async () => {
    const p = await core.readNamespacedPod({ name: 'delivery', namespace });
    return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? p : undefined;
  }, 120_000, 500);
  expect(pod.spec?.nodeName).toBe(node.nodeName);
  expect(pod.status?.phase).toBe('Running');
  // The kubelet reports the digest containerd resolved: the one that was pushed.
  expect(pod.status?.containerStatuses?.[0]?.imageID).toContain(image.split('@')[1]);
  // Its address comes from the bridge CNI's range for this node.
  const prefix = nodeLayout(env).podCidr.replace(/\.0\/24$/, '.');
  expect(pod.status?.podIP?.startsWith(prefix)).toBe(true);

  // From the host: straight to the pod (routed into the node's namespace), and through the Service's NodePort.
  const direct = await fetch(`http://${pod.status!.podIP}:8080/healthz`, { signal: AbortSignal.timeout(5_000) });
  expect(direct.status).toBe(200);
  const nodePort = service.spec!.ports![0].nodePort!;
  const viaService = await eventually(async () => {
    const res = await fetch(`http://${node.nodeIp}:${nodePort}/api/deliveries`, { signal: AbortSignal.timeout(3_000) }).catch(() => undefined);
    return res?.ok ? res : undefined;
  }, 30_000, 500);
  expect(await viaService.json()).toMatchObject({ version: 'real-node', status: 200 });

  // Through the ClusterIP, inside the node's network namespace (the host has no route to the Service range).
  const { stdout } = await run('nsenter', [`--net=/run/netns/${node.netns}`, '--', 'curl', '-sS', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', `http://${service.spec!.clusterIP}/healthz`]);
  expect(stdout).toBe('200');
}, 180_000);
