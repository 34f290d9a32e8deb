/**
 * The Temporal server restarts while one release waits for approval and another is inside `helm upgrade --wait`:
 * both resume from the server's SQLite file, none is lost, the waiting one is approved and finishes, the deploying
 * one finishes with one Helm revision.
 *
 * This file runs its own dev server (own port, own db file, same arguments as client/stack's ensureTemporal) so
 * that stopping it does not pull the shared server from under other test files running at the same time.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SlipwayClient } from '../../client/client';
import { localTokens } from '../../client/identity/tokens';
import { parseConfig, planRelease } from '../../model/plan';
import { findBinary, portOpen, waitFor } from '../../client/stack/process';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { ALL_SEARCH_ATTRIBUTES } from '../../model/search-attributes';
import { BUILD_QUEUE, ORCHESTRATOR_QUEUE, hostQueue } from '../../model/queues';
import { helmHistory, labelNode, uniqueNamespace } from '../deploy-helpers';
import { plan, quietRuntime, sampleConfigText, testPlanActivities, TestSlipwayClient, uniqueVersion } from '../helpers';
import { realActivities } from '../real-activities';
import { testStack } from '../setup/stack-info';

const NS = 'slipway-restart';
const PORT = 7253;
const stack = testStack();
const address = `127.0.0.1:${PORT}`;
const dir = mkdtempSync(join(tmpdir(), 'slipway-restart-'));
const db = join(dir, 'temporal.db');
const log = join(dir, 'temporal.log');
const credentials = new EnvCredentialStore(
  {
    SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username,
    SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password,
    SLIPWAY_REGISTRY_OTHER_USERNAME: stack.registryB.username,
    SLIPWAY_REGISTRY_OTHER_PASSWORD: stack.registryB.password,
  },
  '/nonexistent',
);

let server: ChildProcess | undefined;
let workers: Worker[] = [];
let runs: Promise<void>[] = [];
let native: NativeConnection;
let connection: Connection;
let slipway: SlipwayClient;

async function startServer(): Promise<void> {
  const bin = findBinary('temporal') ?? join(process.env.HOME!, '.cache', 'slipway', 'bin', 'temporal');
  if (!existsSync(bin)) throw new Error('temporal CLI not found (scripts/install.sh installs it into ~/.cache/slipway/bin)');
  const args = ['server', 'start-dev', '--db-filename', db, '--ip', '127.0.0.1', '--port', String(PORT), '--headless', '--log-level', 'warn', '--namespace', NS];
  for (const sa of ALL_SEARCH_ATTRIBUTES) args.push('--search-attribute', `${sa.name}=Keyword`);
  const out = openSync(log, 'a');
  server = spawn(bin, args, { stdio: ['ignore', out, out] });
  await waitFor('restart-test Temporal dev server', () => portOpen(PORT), 60_000, log);
}

async function stopServer(): Promise<void> {
  const s = server!;
  if (s.exitCode !== null || s.signalCode !== null) return;
  const exited = new Promise((r) => s.once('exit', r));
  s.kill('SIGTERM');
  await exited;
  await waitFor('restart-test Temporal port closed', async () => !(await portOpen(PORT)), 20_000, log);
}

beforeAll(async () => {
  quietRuntime();
  await startServer();
  connection = await Connection.connect({ address });
  // The tests' client and plan activity (as startHarness wires them), on this file's own server.
  slipway = new TestSlipwayClient(new Client({ connection, namespace: NS }), ORCHESTRATOR_QUEUE, localTokens());
  native = await NativeConnection.connect({ address });
  const common = { connection: native, namespace: NS, activities: { ...realActivities(credentials, 'restart-host'), ...testPlanActivities() } };
  workers = await Promise.all([
    Worker.create({ ...common, taskQueue: ORCHESTRATOR_QUEUE, workflowBundle: { codePath: stack.bundlePath } }),
    Worker.create({ ...common, taskQueue: BUILD_QUEUE }),
    Worker.create({ ...common, taskQueue: hostQueue('restart-host') }),
  ]);
  runs = workers.map((w) => w.run());
}, 120_000);

afterAll(async () => {
  workers.forEach((w) => w.getState() === 'RUNNING' && w.shutdown());
  await Promise.allSettled(runs);
  await connection?.close();
  await native?.close();
  if (server && server.exitCode === null) server.kill('SIGTERM');
});

test('restart while one release awaits approval and one is inside helm upgrade: both resume and finish', async () => {
  // Release 1: no deploys, waits for a production approval.
  const waiting = plan({ config: sampleConfigText({ prodRegistryUrl: stack.registryB.url }) });
  const a = await slipway.start(waiting);
  const atApproval = await slipway.waitFor(a.workflowId, 'approval', { timeoutMs: 180_000 });
  expect(atApproval.reached).toBe(true);

  // Release 2: deploys to QA, whose pods wait for a node label nobody has yet — `helm upgrade --wait` is in flight.
  const ns = uniqueNamespace('restart');
  // A label key of this test's own: other tests label the same simulated node.
  const poolKey = `slipway.dev/${ns}`;
  const config = `
registries:
  dev: { type: oci, url: "${stack.registry.url}", insecure: true }
environments:
  build: { registry: dev }
  qa:
    registry: dev
    imagePrefix: qa/
    kubeContext: ${stack.contexts.qa}
    namespace: ${ns}
    deploy: { timeout: 180s, smoke: [ { type: rollout } ] }
identity: { local: true }
services:
  delivery:
    build: { context: services/delivery, args: { VERSION: test } }
    chart:
      path: services/delivery/chart
      values: { replicaCount: 1, nodeSelector: { ${poolKey}: ready } }
`;
  const deploying = planRelease(parseConfig(config), { service: 'delivery', version: uniqueVersion(), requester: 'ci-bot' });
  const b = await slipway.start(deploying);
  await waitFor('helm pending-install', async () => (await helmHistory('qa', ns)).some((h) => h.status === 'pending-install'), 180_000);

  const downAt = Date.now();
  await stopServer();
  // Down for a while: the workers' polls and the deploy's heartbeats fail meanwhile.
  await new Promise((r) => setTimeout(r, 5000));
  await startServer();
  const downMs = Date.now() - downAt;

  // Both releases are still there and running, read from the same SQLite file.
  const listed: string[] = [];
  for await (const wf of slipway.client.workflow.list({ query: "ExecutionStatus = 'Running'" })) listed.push(wf.workflowId);
  expect(listed).toEqual(expect.arrayContaining([a.workflowId, b.workflowId]));

  // The waiting release still waits, and can be approved; it finishes.
  const stillWaiting = await slipway.waitFor(a.workflowId, 'approval', { timeoutMs: 60_000 });
  expect(stillWaiting.reached).toBe(true);
  expect(stillWaiting.status.phase).toBe('awaiting-approval');
  await slipway.decide(a.workflowId, 'approve', { approver: 'alice', digest: stillWaiting.status.digest });
  const doneA = await slipway.result(a.workflowId);
  expect(doneA.phase).toBe('succeeded');

  // The deploy can now become ready; it finishes with the one Helm revision it started.
  await labelNode('qa', { [poolKey]: 'ready' });
  const doneB = await slipway.result(b.workflowId);
  expect(doneB.error).toBeUndefined();
  expect(doneB.phase).toBe('succeeded');
  expect((await helmHistory('qa', ns)).map((h) => [h.revision, h.status])).toEqual([[1, 'deployed']]);
  process.stdout.write(`server down for ${downMs} ms (stop + start); server log: ${log}\n${readFileSync(log, 'utf8').split('\n').slice(-3).join('\n')}\n`);
}, 600_000);
