/**
 * The local stack: use what the user already has, otherwise start an embedded default (DESIGN.md's table).
 * Every step is idempotent: a component that already answers is reused.
 */
import Docker from 'dockerode';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { registryEnvKey } from '../../activities/registry/credentials';
import { ALL_SEARCH_ATTRIBUTES } from '../../model/search-attributes';
import { ensureClusters, stopClusters, type ClustersEndpoint } from './kubernetes';
import { ensureRealNodes, stopRealNodes } from './node';
import { ensurePrometheus, stopPrometheus, type PrometheusEndpoint } from './prometheus';
import { ensureRouter, stopRouters } from './router';
import { ensureGitops, gitopsInstalled, stopGitops, type GitopsEndpoint } from './flux';
import { daemonPid, findBinary, portOpen, startDaemon, stateDir, stopDaemon, waitFor } from './process';

export const TEST_NAMESPACES = ['slipway-test', 'slipway-it', 'slipway-ui', 'slipway-bench'];

export interface TemporalEndpoint {
  address: string;
  uiUrl?: string;
  started: boolean;
}

export async function ensureTemporal(opts: { port?: number; uiPort?: number } = {}): Promise<TemporalEndpoint> {
  if (process.env.TEMPORAL_ADDRESS) {
    const [host, port] = process.env.TEMPORAL_ADDRESS.split(':');
    if (!(await portOpen(Number(port ?? 7233), host))) throw new Error(`TEMPORAL_ADDRESS=${process.env.TEMPORAL_ADDRESS} does not answer`);
    return { address: process.env.TEMPORAL_ADDRESS, started: false };
  }
  const port = opts.port ?? 7233;
  const uiPort = opts.uiPort ?? 8233;
  const address = `127.0.0.1:${port}`;
  if (await portOpen(port)) {
    await ensureNamespaces(address, TEST_NAMESPACES);
    return { address, uiUrl: `http://127.0.0.1:${uiPort}`, started: false };
  }
  const bin = findBinary('temporal');
  if (!bin) {
    throw new Error(
      'No Temporal server: set TEMPORAL_ADDRESS, or install the CLI (`bash scripts/install.sh` does ' +
        '`go install github.com/temporalio/cli/cmd/temporal@v1.5.1` into ~/.cache/slipway/bin).',
    );
  }
  const db = join(stateDir('temporal'), 'slipway.db');
  const args = ['server', 'start-dev', '--db-filename', db, '--ip', '127.0.0.1', '--port', String(port), '--ui-port', String(uiPort), '--log-level', 'warn'];
  for (const sa of ALL_SEARCH_ATTRIBUTES) args.push('--search-attribute', `${sa.name}=Keyword`);
  for (const ns of TEST_NAMESPACES) args.push('--namespace', ns);
  const { log } = startDaemon('temporal', bin, args);
  await waitFor('Temporal dev server', () => portOpen(port), 60_000, log);
  await waitFor('Temporal Web', () => portOpen(uiPort), 30_000, log);
  return { address, uiUrl: `http://127.0.0.1:${uiPort}`, started: true };
}

/**
 * A server started by an older version of this code may lack a namespace or search attribute added since:
 * register what is missing (what `start-dev --namespace/--search-attribute` would have done).
 */
async function ensureNamespaces(address: string, names: string[]): Promise<void> {
  const { Connection } = await import('@temporalio/client');
  const connection = await Connection.connect({ address });
  const KEYWORD = 2; // temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
  try {
    for (const namespace of ['default', ...names]) {
      try {
        await connection.workflowService.describeNamespace({ namespace });
      } catch {
        await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: { seconds: 86_400 as never } });
      }
      const existing = await connection.operatorService.listSearchAttributes({ namespace });
      const missing = ALL_SEARCH_ATTRIBUTES.filter((sa) => !existing.customAttributes?.[sa.name]);
      if (missing.length) {
        await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(missing.map((sa) => [sa.name, KEYWORD])) });
      }
    }
  } finally {
    await connection.close();
  }
}

export interface DockerEndpoint {
  host: string;
  started: boolean;
}

async function pingDocker(socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath)) return false;
  await new Docker({ socketPath }).ping();
  return true;
}

export async function ensureDocker(): Promise<DockerEndpoint> {
  if (process.env.DOCKER_HOST) return { host: process.env.DOCKER_HOST, started: false };
  if (await pingDocker('/var/run/docker.sock').catch(() => false)) return { host: 'unix:///var/run/docker.sock', started: false };
  const run = stateDir('run');
  const sock = join(run, 'docker.sock');
  const host = `unix://${sock}`;
  if (await pingDocker(sock).catch(() => false)) return { host, started: false };
  const dockerd = findBinary('dockerd');
  if (!dockerd) throw new Error('No Docker engine: set DOCKER_HOST, start Docker, or `apt-get install docker.io` (scripts/install.sh does).');
  // A private engine: its own socket, data-root and exec-root; no bridge or iptables (builds need neither, and
  // containers that must be reached use the host network).
  const { log } = startDaemon('dockerd', dockerd, [
    '--host', host,
    '--data-root', stateDir('docker'),
    '--exec-root', '/tmp/slipway-docker-exec',
    '--pidfile', join(run, 'dockerd.real.pid'),
    '--bridge=none', '--iptables=false', '--ip6tables=false',
  ]);
  await waitFor('dockerd', () => pingDocker(sock), 60_000, log);
  return { host, started: true };
}

export interface RegistryEndpoint {
  /** host:port */
  url: string;
  username: string;
  password: string;
  started: boolean;
}

/** Debian's docker-registry (distribution 2.8) on loopback with htpasswd auth, so auth paths are exercised. */
export async function ensureRegistry(name = 'registry', port = 5000): Promise<RegistryEndpoint> {
  const dir = stateDir(name);
  const credFile = join(dir, 'credentials.json');
  if (!existsSync(credFile)) {
    writeFileSync(credFile, JSON.stringify({ username: 'slipway', password: randomBytes(18).toString('base64url') }), { mode: 0o600 });
  }
  const { username, password } = JSON.parse(readFileSync(credFile, 'utf8'));
  const url = `127.0.0.1:${port}`;
  if (daemonPid(name) && (await portOpen(port))) return { url, username, password, started: false };
  if (await portOpen(port)) throw new Error(`port ${port} is taken by something that is not slipway's registry; set SLIPWAY_REGISTRY_PORT or stop it`);
  const bin = findBinary('docker-registry') ?? findBinary('registry');
  if (!bin) throw new Error('No OCI registry: `apt-get install docker-registry` (scripts/install.sh does), or configure an existing registry in slipway.yaml.');
  const htpasswd = findBinary('htpasswd');
  if (!htpasswd) throw new Error('htpasswd is missing: `apt-get install apache2-utils`');
  // htpasswd reads the password from stdin (-i), never from argv where `ps` would show it.
  execFileSync(htpasswd, ['-Bci', join(dir, 'htpasswd'), username], { input: password, stdio: ['pipe', 'ignore', 'pipe'] });
  const config = [
    'version: 0.1',
    'log: { level: warn }',
    `storage: { filesystem: { rootdirectory: ${join(dir, 'data')} }, delete: { enabled: true } }`,
    `http: { addr: "127.0.0.1:${port}", secret: "${randomBytes(16).toString('hex')}" }`,
    `auth: { htpasswd: { realm: slipway-registry, path: ${join(dir, 'htpasswd')} } }`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'config.yml'), config, { mode: 0o600 });
  const { log } = startDaemon(name, bin, ['serve', join(dir, 'config.yml')]);
  await waitFor(`registry on ${url}`, () => portOpen(port), 30_000, log);
  return { url, username, password, started: true };
}

export interface Stack {
  temporal: TemporalEndpoint;
  docker: DockerEndpoint;
  registry: RegistryEndpoint;
  clusters: ClustersEndpoint;
  prometheus: PrometheusEndpoint;
  /** Absent when Gitea and Flux are not built here (the demo's install skips them; `install.sh --gitops` builds them). */
  gitops?: GitopsEndpoint;
}

export async function stackUp(opts: { registryPort?: number } = {}): Promise<Stack> {
  const [temporal, docker, registry, clusters] = await Promise.all([
    ensureTemporal(),
    ensureDocker(),
    ensureRegistry('registry', opts.registryPort ?? Number(process.env.SLIPWAY_REGISTRY_PORT ?? 5000)),
    ensureClusters(),
  ]);
  // The real node of each cluster pulls from the registry (its pause image too), so it starts after both.
  await ensureRealNodes(registry);
  // One Traefik per cluster serves the Gateway canaries route through (loopback ports: client/stack/router.ts).
  for (const env of Object.keys(clusters.contexts)) await ensureRouter(env);
  // Prometheus 3 (its own build) discovers the real nodes' pods and scrapes them and the routers (client/stack/prometheus.ts).
  const prometheus = await ensurePrometheus({ kubeconfig: clusters.kubeconfig, contexts: clusters.contexts });
  // GitOps environments: Gitea as the forge and Flux's source/kustomize controllers per cluster (docs/gitops.md).
  const gitops = gitopsInstalled() ? await ensureGitops({ kubeconfig: clusters.kubeconfig, clusters: Object.keys(clusters.contexts) }) : undefined;
  return { temporal, docker, registry, clusters, prometheus, ...(gitops ? { gitops } : {}) };
}

export async function stackDown(): Promise<string[]> {
  const stopped: string[] = [];
  // Flux first: its controllers would otherwise log the API servers' going away.
  stopped.push(...(await stopGitops()));
  if (await stopPrometheus()) stopped.push('prometheus');
  stopped.push(...(await stopRouters()));
  stopped.push(...(await stopRealNodes()));
  stopped.push(...(await stopClusters()));
  for (const name of ['registry', 'registry-b', 'dockerd', 'temporal']) if (await stopDaemon(name)) stopped.push(name);
  return stopped;
}

/** The environment a worker needs to reach the stack; credentials go to the worker only, never to workflows. */
export function workerEnv(stack: Stack, registryName = 'dev'): Record<string, string> {
  const key = registryEnvKey(registryName);
  return {
    TEMPORAL_ADDRESS: stack.temporal.address,
    DOCKER_HOST: stack.docker.host,
    [`${key}_USERNAME`]: stack.registry.username,
    [`${key}_PASSWORD`]: stack.registry.password,
    // The kubeconfig is a file the worker reads; workflows only ever see context names.
    KUBECONFIG: stack.clusters.kubeconfig,
  };
}
