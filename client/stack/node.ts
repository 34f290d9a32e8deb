/**
 * A real node in each local kwok cluster: kubelet + containerd + bridge CNI + kube-proxy (iptables mode), so pods of
 * the sample image really run, get pod IPs and answer through their Service. The kwok nodes stay for scheduling and
 * scale tests; the real node is labelled `slipway.dev/node=real` and tainted `slipway.dev/node=real:NoSchedule`, so only
 * workloads that select and tolerate it land there.
 *
 * Each cluster's node lives in its own network namespace (`slipway-<env>`), joined to the host by a veth pair:
 * the two kube-proxies program iptables in their own namespace (they would otherwise fight over the same KUBE-*
 * chains), pods and Services stay inside namespaces the stack created, and both kubelets keep their default ports.
 * One containerd per node, because a CNI bridge is created in the network namespace of the containerd that runs the
 * plugin; each has its own root, state, socket and runc root. Daemons enter only the network namespace (nsenter
 * --net), not a mount namespace, so kubelet's volume mounts are visible to containerd and runc.
 *
 * Host side, per node: a route to the pod CIDR and one nat rule (chain SLIPWAY-NODE) that lets containerd reach the
 * loopback-only registry at the veth's host address. `stopRealNode` removes all of it.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { ensurePauseImage, type RegistryLogin } from './pause-image';
import { daemonPid, findBinary, pidAlive, slipwayHome, startDaemon, stopDaemon, waitFor } from './process';

const run = promisify(execFile);

export const REAL_NODE_LABEL = { key: 'slipway.dev/node', value: 'real' } as const;
/** Toleration and node selector a workload needs to run on the real node. */
export const REAL_NODE_PLACEMENT = {
  nodeSelector: { [REAL_NODE_LABEL.key]: REAL_NODE_LABEL.value },
  tolerations: [{ key: REAL_NODE_LABEL.key, operator: 'Equal', value: REAL_NODE_LABEL.value, effect: 'NoSchedule' }],
};
const NAT_CHAIN = 'SLIPWAY-NODE';
const CNI_BIN_DIRS = ['/usr/lib/cni', '/opt/cni/bin'];
const ENVS = ['qa', 'prod'];

export interface NodeLayout {
  env: string;
  cluster: string;
  nodeName: string;
  netns: string;
  hostVeth: string;
  hostIp: string;
  nodeIp: string;
  podCidr: string;
  bridge: string;
  /** Persistent state: configs, containerd root, kubelet root. */
  dir: string;
  /** Runtime state (sockets, runc state, netns mounts): gone after a reboot, as containerd expects. */
  runDir: string;
  containerdSock: string;
}

/** Fixed per environment, so restarts find the same netns, addresses and bridge. */
export function nodeLayout(env: string): NodeLayout {
  const i = ENVS.indexOf(env) + 1;
  if (i === 0) throw new Error(`no real node layout for environment ${env}`);
  const runDir = join('/run/slipway', env);
  return {
    env,
    cluster: `slipway-${env}`,
    nodeName: `slipway-${env}-real`,
    netns: `slipway-${env}`,
    hostVeth: `slw-${env}`,
    hostIp: `10.213.${i}.1`,
    nodeIp: `10.213.${i}.2`,
    podCidr: `10.214.${i}.0/24`,
    bridge: `slwbr-${env}`,
    dir: join(slipwayHome(), 'node', env),
    runDir,
    containerdSock: join(runDir, 'containerd.sock'),
  };
}

export interface RealNodeEndpoint {
  nodeName: string;
  nodeIp: string;
  netns: string;
  podCidr: string;
  /** What happened to each daemon. */
  actions: Record<'containerd' | 'kubelet' | 'kube-proxy', 'reused' | 'started' | 'restarted'>;
  ms: number;
}

interface Binaries {
  kubelet: string;
  kubeProxy: string;
  containerd: string;
  ctr: string;
  sysctl: string;
  nsenter: string;
  ip: string;
  iptables: string;
  cniDir: string;
}

function binaries(): Binaries {
  const own = (n: string) => (existsSync(join(slipwayHome(), 'bin', n)) ? join(slipwayHome(), 'bin', n) : findBinary(n));
  const found = {
    kubelet: own('kubelet'),
    kubeProxy: own('kube-proxy'),
    containerd: findBinary('containerd'),
    ctr: findBinary('ctr'),
    sysctl: findBinary('sysctl'),
    runc: findBinary('runc'),
    nsenter: findBinary('nsenter'),
    ip: findBinary('ip'),
    iptables: findBinary('iptables'),
    cniDir: CNI_BIN_DIRS.find((d) => existsSync(join(d, 'bridge'))),
  };
  const missing = Object.entries(found).filter(([, v]) => !v).map(([k]) => k);
  if (missing.length) {
    throw new Error(`the real node needs ${missing.join(', ')}: run scripts/install.sh (tools/kube/build.sh from tools/kubelet; apt-get install containerd runc containernetworking-plugins iptables util-linux iproute2)`);
  }
  return found as Binaries & { runc: string };
}

const daemonName = (l: NodeLayout, what: string) => `node-${l.env}-${what}`;

async function sh(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await run(cmd, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}
const ok = (cmd: string, args: string[]): Promise<boolean> => sh(cmd, args).then(() => true, () => false);
/** Runs a command inside the node's network namespace only (no mount namespace: see the module comment). */
const inNode = (b: Binaries, l: NodeLayout, cmd: string, args: string[]): [string, string[]] => [b.nsenter, [`--net=/run/netns/${l.netns}`, '--', cmd, ...args]];

/** Writes a file when its content changed; true when it did (a running daemon must then restart to read it). */
function writeIfChanged(file: string, content: string): boolean {
  if (existsSync(file) && readFileSync(file, 'utf8') === content) return false;
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, content);
  return true;
}

/** The network namespace, the veth pair, routes and the host's nat rule for the registry. */
async function ensureNetwork(b: Binaries, l: NodeLayout, registryPort: number): Promise<void> {
  if (!existsSync(`/run/netns/${l.netns}`)) await sh(b.ip, ['netns', 'add', l.netns]);
  const node = (cmd: string, args: string[]) => sh(...inNode(b, l, cmd, args));
  if (!(await ok(b.ip, ['link', 'show', l.hostVeth]))) {
    await sh(b.ip, ['link', 'add', l.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', l.netns]);
  }
  if (!(await sh(b.ip, ['-4', 'addr', 'show', 'dev', l.hostVeth])).includes(`${l.hostIp}/24`)) await sh(b.ip, ['addr', 'add', `${l.hostIp}/24`, 'dev', l.hostVeth]);
  await sh(b.ip, ['link', 'set', l.hostVeth, 'up']);
  if (!(await node(b.ip, ['-4', 'addr', 'show', 'dev', 'eth0'])).includes(`${l.nodeIp}/24`)) await node(b.ip, ['addr', 'add', `${l.nodeIp}/24`, 'dev', 'eth0']);
  await node(b.ip, ['link', 'set', 'lo', 'up']);
  await node(b.ip, ['link', 'set', 'eth0', 'up']);
  await node(b.ip, ['route', 'replace', 'default', 'via', l.hostIp]);
  // Per-namespace switches kube-proxy and the bridge plugin rely on.
  for (const [key, value] of [['net/ipv4/ip_forward', '1'], ['net/bridge/bridge-nf-call-iptables', '1']]) {
    await node(b.sysctl, ['-q', '-w', `${key.replaceAll('/', '.')}=${value}`]).catch(() => undefined);
  }
  // The host reaches pods directly (tests, Prometheus); Services through the node's NodePorts on nodeIp.
  await sh(b.ip, ['route', 'replace', l.podCidr, 'via', l.nodeIp, 'dev', l.hostVeth]);
  // containerd pulls from 127.0.0.1:<port> (the image names stay those of the local registry); inside the namespace
  // that is the node's own loopback, so a mirror sends it to hostIp, and the host forwards it to the loopback registry.
  await sh(b.sysctl, ['-q', '-w', `net.ipv4.conf.${l.hostVeth}.route_localnet=1`]);
  if (!(await ok(b.iptables, ['-t', 'nat', '-S', NAT_CHAIN]))) await sh(b.iptables, ['-t', 'nat', '-N', NAT_CHAIN]);
  if (!(await ok(b.iptables, ['-t', 'nat', '-C', 'PREROUTING', '-j', NAT_CHAIN]))) await sh(b.iptables, ['-t', 'nat', '-I', 'PREROUTING', '-j', NAT_CHAIN]);
  const dnat = ['-i', l.hostVeth, '-d', l.hostIp, '-p', 'tcp', '--dport', String(registryPort), '-j', 'DNAT', '--to-destination', `127.0.0.1:${registryPort}`, '-m', 'comment', '--comment', `slipway real node ${l.env}`];
  if (!(await ok(b.iptables, ['-t', 'nat', '-C', NAT_CHAIN, ...dnat]))) await sh(b.iptables, ['-t', 'nat', '-A', NAT_CHAIN, ...dnat]);
}

function containerdConfig(b: Binaries, l: NodeLayout, registry: RegistryLogin, sandboxImage: string): string {
  const port = registry.url.split(':')[1] ?? '5000';
  const mirror = `${l.hostIp}:${port}`;
  const q = JSON.stringify;
  return [
    'version = 2',
    `root = ${q(join(l.dir, 'containerd'))}`,
    `state = ${q(join(l.runDir, 'containerd'))}`,
    '[grpc]',
    `  address = ${q(l.containerdSock)}`,
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = ${q(sandboxImage)}`,
    // Pod network namespaces under this containerd's state dir, so stopRealNode knows which ones are its own.
    '  netns_mounts_under_state_dir = true',
    '  stream_server_address = "127.0.0.1"',
    // This sandboxed host does not let even root lower oom_score_adj (runc's -998 for sandboxes fails with EACCES).
    '  restrict_oom_score_adj = true',
    '  [plugins."io.containerd.grpc.v1.cri".cni]',
    `    bin_dir = ${q(b.cniDir)}`,
    `    conf_dir = ${q(join(l.dir, 'cni'))}`,
    '  [plugins."io.containerd.grpc.v1.cri".containerd]',
    '    snapshotter = "overlayfs"',
    '    default_runtime_name = "runc"',
    '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
    '      runtime_type = "io.containerd.runc.v2"',
    '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
    `        Root = ${q(join(l.runDir, 'runc'))}`,
    '        SystemdCgroup = false',
    `  [plugins."io.containerd.grpc.v1.cri".registry.mirrors.${q(registry.url)}]`,
    `    endpoint = [${q(`http://${mirror}`)}]`,
    // containerd 1.6 looks credentials up by the endpoint it talks to (the mirror), not by the image's host.
    `  [plugins."io.containerd.grpc.v1.cri".registry.configs.${q(mirror)}.auth]`,
    `    username = ${q(registry.username)}`,
    `    password = ${q(registry.password)}`,
    '',
  ].join('\n');
}

function cniConfig(l: NodeLayout): string {
  return `${JSON.stringify({
    cniVersion: '1.0.0',
    name: l.cluster,
    plugins: [
      {
        type: 'bridge',
        bridge: l.bridge,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        // host-local keeps its leases under the run dir: a stopped node leaves none behind.
        ipam: { type: 'host-local', dataDir: join(l.runDir, 'ipam'), ranges: [[{ subnet: l.podCidr }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  }, null, 2)}\n`;
}

interface ClusterAccess {
  server: string;
  port: number;
  ca: string;
  cert: string;
  key: string;
}

/** The cluster's apiserver and credentials, from kwokctl's own kubeconfig for it. */
function clusterAccess(l: NodeLayout): ClusterAccess {
  const dir = join(slipwayHome(), 'kwok', 'clusters', l.cluster);
  const file = join(dir, 'kubeconfig.yaml');
  if (!existsSync(file)) throw new Error(`cluster ${l.cluster} is not provisioned (no ${file}): run ensureClusters first`);
  const m = /server:\s*https:\/\/[^:\s]+:(\d+)/.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`no https server in ${file}`);
  const port = Number(m[1]);
  // kwok's one certificate pair (system:masters) — a local stack; the node has no separate identity.
  return { server: `https://${l.hostIp}:${port}`, port, ca: join(dir, 'pki', 'ca.crt'), cert: join(dir, 'pki', 'admin.crt'), key: join(dir, 'pki', 'admin.key') };
}

function kubeconfig(l: NodeLayout, a: ClusterAccess): string {
  // The apiserver certificate names localhost and 127.0.0.1, not the veth address the node dials.
  return [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{ name: ${l.cluster}, cluster: { server: "${a.server}", certificate-authority: "${a.ca}", tls-server-name: localhost } }]`,
    `users: [{ name: node, user: { client-certificate: "${a.cert}", client-key: "${a.key}" } }]`,
    `contexts: [{ name: node, context: { cluster: ${l.cluster}, user: node } }]`,
    'current-context: node',
    '',
  ].join('\n');
}

function kubeletConfig(l: NodeLayout, a: ClusterAccess): string {
  return `${JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // This machine has cgroup v1; kubelet 1.35+ refuses it unless told otherwise (see docs/local-kubernetes.md).
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    // Each node's pods under its own cgroup tree, so two kubelets on one host do not manage each other's pods.
    cgroupRoot: `/${l.cluster}`,
    containerRuntimeEndpoint: `unix://${l.containerdSock}`,
    address: l.nodeIp,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: a.ca } },
    authorization: { mode: 'AlwaysAllow' },
    failSwapOn: false,
    resolvConf: '',
    clusterDomain: 'cluster.local',
    registerWithTaints: [{ key: REAL_NODE_LABEL.key, value: REAL_NODE_LABEL.value, effect: 'NoSchedule' }],
    serializeImagePulls: false,
    maxPods: 30,
    // A busy shared disk must not make the node evict the pods a test waits for.
    evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '2%', 'imagefs.available': '2%' },
    imageGCHighThresholdPercent: 98,
    imageGCLowThresholdPercent: 95,
    podCIDR: l.podCidr,
  }, null, 2)}\n`;
}

function kubeProxyConfig(l: NodeLayout, kubeconfigFile: string): string {
  return `${JSON.stringify({
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    mode: 'iptables',
    clientConnection: { kubeconfig: kubeconfigFile },
    hostnameOverride: l.nodeName,
    bindAddress: l.nodeIp,
    clusterCIDR: l.podCidr,
    // Inside the node's namespace: these ports do not meet the other node's.
    metricsBindAddress: '127.0.0.1:10249',
    healthzBindAddress: '127.0.0.1:10256',
    nodePortAddresses: [`${l.nodeIp}/32`],
    // conntrack table size is host-wide; a kube-proxy in a network namespace must not try to set it.
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
  }, null, 2)}\n`;
}

/** Makes each v1 hierarchy's cgroup root for this node (kubelet expects cgroupRoot to exist). */
function ensureCgroupRoot(l: NodeLayout): void {
  const base = '/sys/fs/cgroup';
  for (const h of readdirSync(base)) {
    const dir = join(base, h);
    if (h === 'unified' || !existsSync(join(dir, 'cgroup.procs'))) continue;
    mkdirSync(join(dir, l.cluster), { recursive: true });
  }
}

/**
 * kwokctl's binary runtime starts kwok's controller with --manage-all-nodes=true: it would take the real node over
 * (fake its status, "run" its pods). Only nodes annotated kwok.x-k8s.io/node=fake (kwokctl's own) are kwok's. New
 * clusters get this at create (--extra-args, client/stack/kubernetes.ts); an older one is patched and its kwok
 * controller restarted here.
 */
async function ensureKwokLeavesRealNode(l: NodeLayout): Promise<boolean> {
  const dir = join(slipwayHome(), 'kwok', 'clusters', l.cluster);
  const file = join(dir, 'kwok.yaml');
  const text = readFileSync(file, 'utf8');
  const pidFile = join(dir, 'pids', 'kwok-controller.pid');
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
  const running = pid && pidAlive(pid) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0') : [];
  const selective = (args: string[]) => args.includes('--manage-all-nodes=false');
  if (selective(text.split('\n').map((s) => s.replace(/^\s*-\s*/, ''))) && (running.length === 0 || selective(running))) return false;
  writeFileSync(file, text.replace(/^(\s*)- --manage-all-nodes=true$/m, '$1- --manage-all-nodes=false\n$1- --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake'));
  if (pid && pidAlive(pid)) {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 40 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 250));
  }
  // kwokctl starts the components whose pid is not alive: here, only the kwok controller.
  const kwokctl = existsSync(join(slipwayHome(), 'bin', 'kwokctl')) ? join(slipwayHome(), 'bin', 'kwokctl') : findBinary('kwokctl');
  await run(kwokctl!, ['start', 'cluster', '--name', l.cluster, '--wait', '60s'], { env: { ...process.env, KWOK_WORKDIR: join(slipwayHome(), 'kwok') }, timeout: 120_000 });
  // The new controller cannot take the fake nodes' Leases its predecessor held until they expire (200 s): drop them.
  const { coord } = await apis(l);
  for (const lease of (await coord.listNamespacedLease({ namespace: 'kube-node-lease' })).items) {
    if (lease.metadata?.name !== l.nodeName) await coord.deleteNamespacedLease({ name: lease.metadata!.name!, namespace: 'kube-node-lease' }).catch(() => undefined);
  }
  return true;
}

async function apis(l: NodeLayout) {
  const { k8s } = await import('../../activities/kubernetes/client');
  const { KubeCluster } = await import('../../activities/kubernetes/cluster');
  const cluster = KubeCluster.forKubeconfig(join(slipwayHome(), 'kwok', 'kubeconfig'));
  const context = `kwok-${l.cluster}`;
  return { core: cluster.api(context, k8s.CoreV1Api), coord: cluster.api(context, k8s.CoordinationV1Api) };
}

async function nodeReady(l: NodeLayout): Promise<boolean> {
  const { core } = await apis(l);
  const node = await core.readNode({ name: l.nodeName }).catch(() => undefined);
  return Boolean(node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
}

/** Starts a daemon inside the node's namespace, or restarts it when its config changed; reuses a running one. */
async function ensureDaemon(b: Binaries, l: NodeLayout, what: string, cmd: string, args: string[], changed: boolean): Promise<'reused' | 'started' | 'restarted'> {
  const name = daemonName(l, what);
  const alive = daemonPid(name);
  if (alive && !changed) return 'reused';
  if (alive) await stopDaemon(name);
  startDaemon(name, ...inNode(b, l, cmd, args));
  return alive ? 'restarted' : 'started';
}

/**
 * Starts (or reuses, or restarts after a config change) the real node of one local cluster and waits until it is
 * Ready. The cluster must be up (ensureClusters) and the registry running (the pause image is pushed to it).
 */
export async function ensureRealNode(env: string, registry: RegistryLogin): Promise<RealNodeEndpoint> {
  const started = Date.now();
  const b = binaries();
  const l = nodeLayout(env);
  const access = clusterAccess(l);
  mkdirSync(l.dir, { recursive: true });
  mkdirSync(l.runDir, { recursive: true });
  await ensureKwokLeavesRealNode(l);
  const sandboxImage = await ensurePauseImage(registry);
  await ensureNetwork(b, l, Number(registry.url.split(':')[1] ?? 5000));
  ensureCgroupRoot(l);

  const files = {
    containerd: join(l.dir, 'containerd.toml'),
    cni: join(l.dir, 'cni', '10-slipway.conflist'),
    kubeconfig: join(l.dir, 'kubeconfig.yaml'),
    kubelet: join(l.dir, 'kubelet.json'),
    proxy: join(l.dir, 'kube-proxy.json'),
  };
  const containerdChanged = writeIfChanged(files.containerd, containerdConfig(b, l, registry, sandboxImage));
  writeIfChanged(files.cni, cniConfig(l)); // containerd watches its CNI directory itself
  const kubeconfigChanged = writeIfChanged(files.kubeconfig, kubeconfig(l, access));
  const kubeletChanged = writeIfChanged(files.kubelet, kubeletConfig(l, access)) || kubeconfigChanged;
  const proxyChanged = writeIfChanged(files.proxy, kubeProxyConfig(l, files.kubeconfig)) || kubeconfigChanged;

  const actions = {} as RealNodeEndpoint['actions'];
  actions.containerd = await ensureDaemon(b, l, 'containerd', b.containerd, ['--config', files.containerd, '--log-level', 'warn'], containerdChanged);
  await waitFor(`containerd of ${l.nodeName}`, async () => existsSync(l.containerdSock) && (await ok(b.ctr, ['--address', l.containerdSock, 'version'])), 30_000, join(slipwayHome(), 'run', `${daemonName(l, 'containerd')}.log`));
  actions.kubelet = await ensureDaemon(b, l, 'kubelet', b.kubelet, [
    '--config', files.kubelet,
    '--kubeconfig', files.kubeconfig,
    '--root-dir', join(l.dir, 'kubelet'),
    '--hostname-override', l.nodeName,
    '--node-ip', l.nodeIp,
    '--node-labels', `${REAL_NODE_LABEL.key}=${REAL_NODE_LABEL.value}`,
    '--v', '1',
  ], kubeletChanged || actions.containerd !== 'reused');
  actions['kube-proxy'] = await ensureDaemon(b, l, 'kube-proxy', b.kubeProxy, ['--config', files.proxy, '--v', '1'], proxyChanged);
  await waitFor(`${l.nodeName} Ready`, () => nodeReady(l), 120_000, join(slipwayHome(), 'run', `${daemonName(l, 'kubelet')}.log`));
  return { nodeName: l.nodeName, nodeIp: l.nodeIp, netns: l.netns, podCidr: l.podCidr, actions, ms: Date.now() - started };
}

/** Processes whose command line names this node's containerd socket: its containerd-shim-runc-v2 processes. */
function shimPids(l: NodeLayout): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('containerd-shim-runc-v2') && cmd.includes(l.containerdSock)) pids.push(Number(p));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Kills every process in this node's pod cgroups (the containers) and removes the cgroups. */
async function killPods(l: NodeLayout): Promise<void> {
  const base = '/sys/fs/cgroup';
  const trees = readdirSync(base).map((h) => join(base, h, l.cluster)).filter(existsSync);
  const walk = (dir: string): string[] => [dir, ...readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).flatMap((d) => walk(join(dir, d.name)))];
  for (let round = 0; round < 20; round++) {
    const pids = new Set(trees.flatMap((t) => walk(t)).flatMap((d) => readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number)));
    if (!pids.size) break;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  // Deepest first: a cgroup can be removed only when it has no children.
  for (const t of trees) {
    for (const d of walk(t).reverse()) {
      try {
        rmdirSync(d);
      } catch {
        // still busy; the next stop tries again
      }
    }
  }
}

/**
 * Stops the real node of one cluster: kube-proxy, kubelet, the pods, containerd and its shims; then removes the
 * network namespace (with the bridge and the pods' veths), the host route and nat rule, and the runtime state.
 * The Node object stays in the cluster (NotReady) so a later ensureRealNode finds its pods' records.
 */
export async function stopRealNode(env: string): Promise<string[]> {
  const l = nodeLayout(env);
  const stopped: string[] = [];
  for (const what of ['kube-proxy', 'kubelet']) if (await stopDaemon(daemonName(l, what))) stopped.push(what);
  await killPods(l).catch(() => undefined);
  for (const pid of shimPids(l)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (await stopDaemon(daemonName(l, 'containerd'))) stopped.push('containerd');
  const ip = findBinary('ip') ?? 'ip';
  const iptables = findBinary('iptables') ?? 'iptables';
  // What the killed shims and containerd left mounted under the run dir: pod network namespaces (bind mounts),
  // sandbox /dev/shm tmpfs, container root filesystems. Deepest first.
  const umount = findBinary('umount') ?? 'umount';
  for (const m of mountsUnder(l.runDir)) if (!(await ok(umount, [m]))) await ok(umount, ['-l', m]);
  if (existsSync(`/run/netns/${l.netns}`)) {
    await ok(ip, ['netns', 'del', l.netns]);
    stopped.push(`netns ${l.netns}`);
  }
  await ok(ip, ['link', 'del', l.hostVeth]); // gone with the namespace; in case it was left half-made
  await ok(ip, ['route', 'del', l.podCidr]);
  // Remove this node's rule; the chain and its PREROUTING jump go with the last node.
  const rules = (await sh(iptables, ['-t', 'nat', '-S', NAT_CHAIN]).catch(() => '')).split('\n').filter((r) => r.startsWith(`-A ${NAT_CHAIN} `) && r.includes(`-i ${l.hostVeth} `));
  for (const r of rules) await ok(iptables, ['-t', 'nat', '-D', ...splitRule(r).slice(1)]);
  if (!(await sh(iptables, ['-t', 'nat', '-S', NAT_CHAIN]).catch(() => '')).includes(`-A ${NAT_CHAIN}`)) {
    await ok(iptables, ['-t', 'nat', '-D', 'PREROUTING', '-j', NAT_CHAIN]);
    await ok(iptables, ['-t', 'nat', '-X', NAT_CHAIN]);
  }
  rmSync(l.runDir, { recursive: true, force: true });
  return stopped;
}

/** Mount points at or below `dir`, deepest first (from this process's mountinfo; octal escapes decoded). */
function mountsUnder(dir: string): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((line) => line.split(' ')[4]).filter(Boolean)
    .map((p) => p.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  return [...new Set(points.filter((p) => p === dir || p.startsWith(`${dir}/`)))].sort((a, b) => b.length - a.length);
}

/** `iptables -S` output back into arguments (the comment is quoted). */
function splitRule(rule: string): string[] {
  return (rule.match(/"[^"]*"|\S+/g) ?? []).map((t) => t.replace(/^"(.*)"$/, '$1'));
}

/** Both local clusters' real nodes, for `stack up` (after ensureClusters and ensureRegistry). */
export async function ensureRealNodes(registry: RegistryLogin, envs: readonly string[] = ENVS): Promise<Record<string, RealNodeEndpoint>> {
  const out: Record<string, RealNodeEndpoint> = {};
  // Sequential: each kubelet's start is CPU-heavy on two cores.
  for (const env of envs) out[env] = await ensureRealNode(env, registry);
  return out;
}

export async function stopRealNodes(envs: readonly string[] = ENVS): Promise<string[]> {
  const stopped: string[] = [];
  for (const env of envs) stopped.push(...(await stopRealNode(env)).map((s) => `${env}: ${s}`));
  return stopped;
}

/** Parses a kwokctl cluster kubeconfig's context names (used by tests to find the node's cluster). */
export function realNodeContext(env: string): string {
  const file = join(slipwayHome(), 'kwok', 'kubeconfig');
  const doc = existsSync(file) ? (parseYaml(readFileSync(file, 'utf8')) as { contexts?: { name: string }[] }) : {};
  const name = `kwok-slipway-${env}`;
  if (!doc.contexts?.some((c) => c.name === name)) throw new Error(`no context ${name} in ${file}`);
  return name;
}
