/** `slipway worker` and `slipway dev`: run workers against the configured (or embedded) stack. */
import type { Worker } from '@temporalio/worker';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createBuilderWorkers } from '../workers/builder';
import { temporalSettings } from '../workers/connection';
import { connectWorker, createOrchestratorWorker } from '../workers/orchestrator';
import { SlipwayClient } from './client';
import { keyDirOf, loadConfig } from '../host/config';
import { tokenTtlSecondsOf } from '../model/plan';
import { localTokens } from './identity/tokens';
import { renderStatus } from './render';
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

export async function runDev(opts: { config: string; version: string; release: boolean }): Promise<void> {
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
    const final = await Promise.race([client.waitFor(started.workflowId, 'done'), running.then(() => undefined)]);
    if (final) log(renderStatus(final.status));
  }
  log('workers keep running; Ctrl-C to stop');
  await stopped;
}
