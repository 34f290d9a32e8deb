/** Shared test helpers: a client and workers on the real dev server, release plans, unique versions. */
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, DefaultLogger } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { SlipwayClient, type StartResult } from '../client/client';
import { parseConfig, planRelease } from '../model/plan';
import { localTokens, type DecisionTokens } from '../client/identity/tokens';
import { DecisionSigner, type DecisionRequest } from '../client/identity/signer';
import { defaultKeyDir } from '../host/keys';
import { canonicalJson, sha256Of, trustAnchorsOf } from '../workers/plan';
import type { GitopsActivities, SlipwayActivities } from '../activities/contract';
import { BUILD_QUEUE, ORCHESTRATOR_QUEUE, hostQueue } from '../model/queues';
import { releaseWorkflowId } from '../model/identifiers';
import { ALL_SEARCH_ATTRIBUTES } from '../model/search-attributes';
import type { ReleaseInput, ReleaseStatus, StartRequest } from '../model/types';
import { timeSkippingServer, workflowStack } from './setup/stack-info';

let runtimeInstalled = false;
/** Keep the SDK's own logging quiet unless a test fails loudly. */
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger('ERROR') });
  } catch {
    /* already installed */
  }
}

export const ROOT = join(__dirname, '..');

export const uniqueVersion = (): string => `v1.0.${Math.floor(Math.random() * 1e6)}-t${randomBytes(4).toString('hex')}`;

export function sampleConfigText(overrides: { registryUrl?: string; prodRegistryUrl?: string; approval?: string; qaScan?: string; prodScan?: string } = {}): string {
  return `
registries:
  dev: { type: oci, url: "${overrides.registryUrl ?? '127.0.0.1:5000'}", insecure: true }
  other: { type: oci, url: "${overrides.prodRegistryUrl ?? overrides.registryUrl ?? '127.0.0.1:5000'}", insecure: true }
groups:
  release-managers: [alice, bob, carol]
environments:
  qa: { registry: dev${overrides.qaScan ? `, scan: ${overrides.qaScan}` : ''} }
  prod:
    registry: other
    imagePrefix: prod/
${overrides.prodScan ? `    scan: ${overrides.prodScan}\n` : ''}    approval: ${overrides.approval ?? '{ approvers: [group:release-managers, dave], minApprovals: 1, requesterCannotApprove: true, timeout: 72h }'}
identity: { issuers: [ { name: ui } ], local: true }
services:
  delivery:
    source: https://example.com/slipway/delivery
    build: { context: services/delivery, dockerfile: Dockerfile, args: { VERSION: test } }
  broken:
    build: { context: test/fixtures/broken, dockerfile: Dockerfile }
  slow:
    build: { context: test/fixtures/slow, dockerfile: Dockerfile }
  vulnerable:
    build: { context: test/fixtures/scan/vulnerable }
  clean:
    build: { context: test/fixtures/scan/clean }
  allowlisted:
    build: { context: test/fixtures/scan/allowlisted }
  nofix:
    build: { context: test/fixtures/scan/nofix }
`;
}

export function plan(opts: { version?: string; requester?: string; image?: string; service?: string; config?: string } = {}): ReleaseInput {
  return planRelease(parseConfig(opts.config ?? sampleConfigText()), {
    service: opts.service ?? 'delivery',
    version: opts.version ?? uniqueVersion(),
    requester: opts.requester ?? 'ci-bot',
    // No gitSha: given one, the builder builds exactly that commit, and the sample's image needs bin/delivery (built, not committed).
    ...(opts.image ? { image: opts.image } : {}),
  });
}

/**
 * Plans the tests made with their own configurations, by release id: the workers' plan activity in tests hands out
 * the plan the test built (as the real one reads slipway.yaml; that path has its own tests).
 */
const testPlans = new Map<string, ReleaseInput>();

/** A client that signs with the local key (as `slipway` does on the local stack) and remembers the tests' plans. */
export class TestSlipwayClient extends SlipwayClient {
  override async start(req: StartRequest | ReleaseInput): Promise<StartResult> {
    if ('environments' in req) testPlans.set(releaseWorkflowId(req.service, req.version), req);
    return super.start(req);
  }
}

/** The tests' `resolveRelease`: the plan a test built (else the sample configuration's), the local stack's keys. */
export function testPlanActivities(): Pick<SlipwayActivities, 'resolveRelease'> {
  return {
    async resolveRelease(req) {
      const cfg = parseConfig(sampleConfigText());
      const plan = testPlans.get(releaseWorkflowId(req.service, req.version)) ?? planRelease(cfg, req);
      return { plan, planDigest: sha256Of(canonicalJson(plan)), trust: trustAnchorsOf(cfg.identity, ROOT), source: 'test plan' };
    },
  };
}

export async function connectClient(namespace: string): Promise<{ client: Client; slipway: SlipwayClient; close: () => Promise<void> }> {
  const connection = await Connection.connect({ address: workflowStack().temporal });
  const client = new Client({ connection, namespace });
  return { client, slipway: new TestSlipwayClient(client, ORCHESTRATOR_QUEUE, localTokens()), close: () => connection.close() };
}

/** Workers for all three queues of one (fake or real) host, sharing the suite's pre-built workflow bundle. */
/** Test activities may leave out the plan activity: the tests' one (the plans the tests built) is always used. */
/** The gitops activities are optional: only tests of gitops delivery register them. */
export type TestActivities = Omit<SlipwayActivities, 'resolveRelease'> & Partial<Pick<SlipwayActivities, 'resolveRelease'>> & Partial<GitopsActivities>;

/**
 * `plans`: how the workers resolve a release's plan — by default the plans the tests built (testPlanActivities); a
 * test of the real path passes createPlanActivities over a slipway.yaml file.
 */
export async function createWorkers(namespace: string, acts: TestActivities, hostId = 'test-host', plans: Pick<SlipwayActivities, 'resolveRelease'> = testPlanActivities()): Promise<{ workers: Worker[]; connection: NativeConnection }> {
  quietRuntime();
  const connection = await NativeConnection.connect({ address: workflowStack().temporal });
  return { workers: await workersOn(connection, namespace, acts, hostId, plans), connection };
}

async function workersOn(connection: NativeConnection, namespace: string, acts: TestActivities, hostId: string, plans: Pick<SlipwayActivities, 'resolveRelease'>): Promise<Worker[]> {
  const common = { connection, namespace, activities: { ...acts, ...plans } as SlipwayActivities };
  return Promise.all([
    Worker.create({ ...common, taskQueue: ORCHESTRATOR_QUEUE, workflowBundle: { codePath: workflowStack().bundlePath } }),
    Worker.create({ ...common, taskQueue: BUILD_QUEUE }),
    Worker.create({ ...common, taskQueue: hostQueue(hostId) }),
  ]);
}

export interface Harness {
  slipway: SlipwayClient;
  stop(): Promise<void>;
}

/** A client plus running workers (one fake or real host) for a test file; `stop` in afterAll. */
export async function startHarness(namespace: string, acts: TestActivities, hostId: string, plans?: Pick<SlipwayActivities, 'resolveRelease'>): Promise<Harness> {
  const { slipway, close } = await connectClient(namespace);
  const { workers } = await createWorkers(namespace, acts, hostId, plans);
  const runs = workers.map((w) => w.run());
  return {
    slipway,
    async stop() {
      workers.forEach((w) => w.shutdown());
      await Promise.allSettled(runs);
      await close();
    },
  };
}

/** The local key's tokens, issued at the time-skipping server's time (the workflow checks them against it). */
class ServerClockTokens implements DecisionTokens {
  private readonly signer = DecisionSigner.fromKeyDir(defaultKeyDir(), 'local', 'local');
  constructor(private readonly env: TestWorkflowEnvironment) {}
  async token(req: DecisionRequest): Promise<string> {
    const iat = Math.floor((await this.env.currentTimeMs()) / 1000);
    return this.signer.sign(req, { iat, exp: iat + this.signer.ttlSeconds });
  }
}

/**
 * A client and workers on a time-skipping test server of the file's own (the Java one scripts/install.sh fetched):
 * while a test awaits a release's result the server jumps over its timers, so deadlines and analysis intervals keep
 * their real lengths. Time does not move while a test polls, queries or waits on an Update, and it does so in real
 * time there. The server's clock runs ahead of the wall clock after a jump (awaiting a result also jumps to the
 * finished release's leftover run-timeout timer, ten years on), so the client's tokens are signed on the server's
 * clock, as if the person acted at that moment.
 */
export async function startTimeSkippingHarness(acts: TestActivities, hostId: string): Promise<Harness & { env: TestWorkflowEnvironment }> {
  quietRuntime();
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: timeSkippingServer() } } });
  const namespace = env.namespace ?? 'default';
  // The dev server is started with these; the test server learns them here (the workflows upsert them).
  const KEYWORD = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  await env.connection.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(ALL_SEARCH_ATTRIBUTES.map((sa) => [sa.name, KEYWORD])) });
  const workers = await workersOn(env.nativeConnection, namespace, acts, hostId, testPlanActivities());
  const runs = workers.map((w) => w.run());
  return {
    env,
    slipway: new TestSlipwayClient(env.client, ORCHESTRATOR_QUEUE, new ServerClockTokens(env)),
    async stop() {
      workers.forEach((w) => w.shutdown());
      await Promise.allSettled(runs);
      await env.teardown();
    },
  };
}

/** Terminates every running release in the client's namespace (leftovers of earlier, interrupted runs). */
export async function terminateRunning(slipway: SlipwayClient, reason: string): Promise<void> {
  for await (const wf of slipway.client.workflow.list({ query: "ExecutionStatus = 'Running'" })) {
    await slipway.client.workflow.getHandle(wf.workflowId, wf.runId).terminate(reason).catch(() => undefined);
  }
}

export async function eventually<T>(fn: () => Promise<T | undefined | false>, timeoutMs = 30_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`);
}

export const CLI = join(ROOT, 'dist', 'client', 'cli.js');

/** Runs the built CLI as a user would; `json` is stdout parsed when it is JSON. */
export function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string; json: any }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      let json: any;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolve({ code: err ? ((err as any).code ?? 1) : 0, stdout, stderr, json });
    });
  });
}

/** How a release ended: its failure type and message (none when it succeeded) and its final status. */
export async function outcomeOf(slipway: SlipwayClient, id: string): Promise<{ type?: string; message?: string; status: ReleaseStatus }> {
  let type: string | undefined;
  let message: string | undefined;
  try {
    await slipway.handle(id).result();
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    type = (err.cause as { type?: string } | undefined)?.type;
    message = err.cause?.message;
  }
  return { type, message, status: await slipway.status(id) };
}

/**
 * Registers a Temporal namespace of a test file's own with the release's search attributes, as `stack up` does for
 * its namespaces (idempotent): files sharing `slipway-it` terminate each other's releases in their beforeAll.
 */
export async function ensureTestNamespace(namespace: string, address = workflowStack().temporal): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    const registered = await connection.workflowService.describeNamespace({ namespace }).then(() => true, () => false);
    if (!registered) await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: { seconds: 86_400 as never } });
    // A new namespace reaches the server's namespace cache within seconds; until then the calls below fail.
    await eventually(async () => {
      const existing = await connection.operatorService.listSearchAttributes({ namespace });
      const missing = ALL_SEARCH_ATTRIBUTES.filter((sa) => !existing.customAttributes?.[sa.name]);
      const KEYWORD = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
      if (missing.length) await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: Object.fromEntries(missing.map((sa) => [sa.name, KEYWORD])) });
      return true;
    }, 60_000, 1000);
  } finally {
    await connection.close();
  }
}
