/** `slipway worker` and `slipway dev`: run workers against the configured (or embedded) stack. */
import type { Worker } from '@temporalio/worker';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createBuilderWorkers } from '../workers/builder';
import { temporalSettings } from '../workers/connection';
import { connectWorker, createOrchestratorWorker } from '../workers/orchestrator';
import { SlipwayClient } from './client';
import { keyDirOf, loadConfig } from '../host/config';
import { tokenTtlSecondsOf } from '../model/plan';
import { localTokens } from './identity/tokens';
import { parseDocument } from 'yaml';
import { UsageError } from '../model/errors';
import { renderCanaryInterval, renderStatus } from './render';
import { routerPorts } from './stack/router';
import type { ReleaseStatus } from '../model/types';
import { stackUp, workerEnv, type Stack } from './stack';
import { findBinary, stateDir } from './stack/process';

const log = (msg: string) => process.stderr.write(`${msg}\n`);

/** Hands the embedded registry's credentials to this worker for config registries that point at it. */
function adoptStackCredentials(configFile: string, stack: Stack): void {
  const cfg = loadConfig(configFile);
  for (const [name, reg] of Object.entries(cfg.registries)) {
    if (reg.type === 'oci' && reg.url === stack.registry.url) {
      for (const [k, v] of Object.entries(workerEnv(stack, name))) if (k.startsWith('SLIPWAY_REGISTRY_')) process.env[k] ??= v;
    }
  }
  process.env.DOCKER_HOST ??= stack.docker.host;
  // Helm and the Kubernetes client read the local clusters' kubeconfig (contexts kwok-slipway-qa / -prod).
  process.env.KUBECONFIG ??= stack.clusters.kubeconfig;
}

/**
 * On the embedded stack with no Trivy database anywhere (none can be downloaded here), workers get the fixture
 * database the tests use — and say so, since four advisories are no vulnerability feed.
 */
function adoptFixtureTrivyDb(): void {
  if (process.env.SLIPWAY_TRIVY_CACHE_DIR || process.env.SLIPWAY_TRIVY_DB_REPOSITORY) return;
  if (existsSync(join(homedir(), '.cache', 'trivy', 'db', 'trivy.db'))) return;
  const tool = findBinary('trivy-fixture-db');
  if (!tool) return;
  const dir = stateDir('trivy');
  execFileSync(tool, ['-advisories', resolve('test/fixtures/trivy/advisories.json'), '-cache-dir', dir], { stdio: 'ignore' });
  process.env.SLIPWAY_TRIVY_CACHE_DIR = dir;
  log(`no Trivy database found: scanning against the test fixture database in ${dir} (demo only; see README "Trivy and its database")`);
}

export async function startWorkers(opts: { role: string; address: string; namespace: string; workspace?: string; config?: string }): Promise<Worker[]> {
  const connection = await connectWorker({ address: opts.address, namespace: opts.namespace });
  const workers: Worker[] = [];
  if (opts.role === 'orchestrator' || opts.role === 'all') workers.push(await createOrchestratorWorker({ connection, namespace: opts.namespace, configFile: opts.config, repoRoot: opts.workspace }));
  if (opts.role === 'builder' || opts.role === 'all') workers.push(...(await createBuilderWorkers({ connection, namespace: opts.namespace, workspace: opts.workspace })));
  if (!workers.length) throw new Error(`--role must be orchestrator, builder or all, not "${opts.role}"`);
  return workers;
}

export async function runWorkers(opts: { role: string; config: string; address?: string; namespace?: string }): Promise<void> {
  const s = temporalSettings();
  if (!process.env.TEMPORAL_ADDRESS && !opts.address) {
    // On the embedded stack, pick up what `slipway stack up` started.
    const stack = await stackUp();
    adoptStackCredentials(opts.config, stack);
    adoptFixtureTrivyDb();
  }
  const workers = await startWorkers({ role: opts.role, address: opts.address ?? s.address, namespace: opts.namespace ?? s.namespace, workspace: resolve('.'), config: opts.config });
  log(`slipway worker (${opts.role}) polling on ${opts.address ?? s.address}`);
  await Promise.all(workers.map((w) => w.run()));
}

/** The planted regressions `slipway dev --regression` offers: a build arg of the sample service and its value. */
export const DEV_REGRESSIONS = { errors: { ERROR_RATE: '0.2' }, latency: { LATENCY_MS: '120' } } as const;
export type DevRegression = keyof typeof DEV_REGRESSIONS;

/**
 * The configuration the workers of a regression release plan from: slipway.yaml with the sample's build arg added
 * (the workers plan every release from their own configuration, so this is how a build differs — as a second CI
 * job with its own configuration would). Written 0600 under .slipway/, paths still resolve against the workspace.
 */
export function regressionConfig(configFile: string, kind: DevRegression): string {
  const doc = parseDocument(readFileSync(configFile, 'utf8'));
  for (const [arg, value] of Object.entries(DEV_REGRESSIONS[kind])) doc.setIn(['services', 'delivery', 'build', 'args', arg], value);
  mkdirSync('.slipway', { recursive: true });
  const file = join('.slipway', `dev-regression-${kind}.yaml`);
  writeFileSync(file, `# slipway dev --regression ${kind}: ${configFile} with a planted regression. Generated; do not edit.\n${doc.toString()}`, { mode: 0o600 });
  loadConfig(file); // refuses now, before any worker starts, if the result is not a valid configuration
  return file;
}

/**
 * A bounded load through production's Traefik while a release is in production (the sample's own `load` mode: at
 * most `seconds`, stopped early when the release ends), so a canary there is judged on real requests.
 */
function startDevLoad(configFile: string, seconds: number): { stop: () => void } | undefined {
  const bin = resolve('services/delivery/bin/delivery');
  const hostnames = (loadConfig(configFile).services.delivery?.chart?.environments.prod as { route?: { hostnames?: string[] } } | undefined)?.route?.hostnames;
  if (!existsSync(bin) || !hostnames?.length) return undefined;
  const child = spawn(bin, ['load', '-url', `http://127.0.0.1:${routerPorts('prod').web}/api/deliveries`, '-header', `Host:${hostnames[0]}`, '-rps', '30', '-duration', `${seconds}s`, '-keepalive=false'], { stdio: ['ignore', 'ignore', 'inherit'] });
  log(`load: 30 requests/s through prod's Traefik (Host ${hostnames[0]}) for at most ${seconds}s`);
  return { stop: () => void child.kill('SIGINT') };
}

export async function runDev(opts: { config: string; version: string; release: boolean; regression?: DevRegression }): Promise<void> {
  if (opts.regression && !(opts.regression in DEV_REGRESSIONS)) throw new UsageError(`--regression: must be one of ${Object.keys(DEV_REGRESSIONS).join(', ')}, not "${opts.regression}"`);
  const kind = opts.regression;
  if (kind) {
    opts = { ...opts, config: regressionConfig(opts.config, kind) };
    log(`planted regression "${kind}" (${JSON.stringify(DEV_REGRESSIONS[kind])}): workers plan from ${opts.config}; the canary in production should fail and roll back`);
  }
  log('bringing the local stack up …');
  const stack = await stackUp();
  adoptStackCredentials(opts.config, stack);
  adoptFixtureTrivyDb();
  log(`Temporal ${stack.temporal.address} · Temporal Web ${stack.temporal.uiUrl} · Docker ${stack.docker.host} · registry ${stack.registry.url} · clusters ${Object.values(stack.clusters.contexts).join(', ')} (KUBECONFIG=${stack.clusters.kubeconfig})`);
  const s = temporalSettings();
  const workers = await startWorkers({ role: 'all', address: stack.temporal.address, namespace: s.namespace, workspace: resolve('.'), config: opts.config });
  const running = Promise.all(workers.map((w) => w.run()));
  // On the local stack the CLI's own key signs who asks (self-asserted; slipway.yaml's identity.local allows it).
  const client = await SlipwayClient.connect(stack.temporal.address, s.namespace, localTokens(keyDirOf(loadConfig(opts.config)), tokenTtlSecondsOf(loadConfig(opts.config))));
  const { buildUiServer } = await import('./ui/server');
  const ui = await buildUiServer({ slipway: client, config: loadConfig(opts.config), namespace: s.namespace, temporalWebUrl: stack.temporal.uiUrl });
  log(`approvals UI: ${await ui.listen({ host: '127.0.0.1', port: Number(process.env.SLIPWAY_UI_PORT ?? 8088) })}`);
  // Ctrl-C (or SIGTERM) at any point stops everything this command started, so the process can exit.
  const stop = () => {
    log('stopping …');
    workers.forEach((w) => w.getState() === 'RUNNING' && w.shutdown());
    void ui.close();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const stopped = running.then(() => ui.close()).then(() => client.client.connection.close());
  if (opts.release) {
    const started = await client.start({ service: 'delivery', version: opts.version, requester: process.env.SLIPWAY_USER ?? 'dev' });
    log(`${started.attached ? 'attached to' : 'started'} ${started.workflowId}`);
    log(`  Temporal Web: ${stack.temporal.uiUrl}/namespaces/${s.namespace}/workflows/${encodeURIComponent(started.workflowId)}`);
    const { status } = await Promise.race([client.waitFor(started.workflowId, 'approval'), running.then(() => ({ status: undefined }))]);
    if (!status) return stopped.then(() => undefined);
    log(renderStatus(status));
    if (status.phase === 'awaiting-approval') {
      log(`approve in the UI (sign in as alice), or from another terminal:\n  slipway release approve ${started.workflowId} --as alice --comment "looks good"`);
    }
    const load = startDevLoad(opts.config, 300);
    const final = await Promise.race([client.waitFor(started.workflowId, 'done', { onStatus: canaryPrinter() }), running.then(() => undefined)]);
    load?.stop();
    if (final) log(renderStatus(final.status));
  }
  log('workers keep running; Ctrl-C to stop');
  await stopped;
}

/** Prints each canary interval once, as it is judged. */
function canaryPrinter(): (s: ReleaseStatus) => void {
  let judged = 0;
  return (s) => {
    const intervals = s.canary?.intervals ?? [];
    for (const i of intervals.slice(judged)) log(`  canary ${renderCanaryInterval(i)}`);
    judged = intervals.length;
  };
}
