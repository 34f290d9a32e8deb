/**
 * The release workflow on the real Temporal dev server, with mocked activities (the real ones are exercised by the
 * integration tests). Covers the approval rules, rejection, abort, CI re-runs and replay; approval deadlines run
 * on a time-skipping server with their real lengths.
 */
import { Context } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApprovalRefusedError, type SlipwayClient } from '../../client/client';
import { defaultKeyDir } from '../../host/keys';
import { edgeTokens } from '../../client/identity/tokens';
import { hostQueue } from '../../model/queues';
import { releaseWorkflowId } from '../../model/identifiers';
import { SA } from '../../model/search-attributes';
import type { ReleaseInput } from '../../model/types';
import { eventually, plan, type TestActivities, sampleConfigText, startHarness, startTimeSkippingHarness, uniqueVersion, type Harness } from '../helpers';
import { workflowStack } from '../setup/stack-info';
import { noopActivities } from '../../bench/noop-worker';

const pick = <T extends object, K extends keyof T>(o: T, keys: K[]): Pick<T, K> => Object.fromEntries(keys.map((k) => [k, o[k]])) as Pick<T, K>;

const NS = 'slipway-test';
const DIGEST = `sha256:${'a'.repeat(64)}`;
const EventType = temporal.api.enums.v1.EventType;
const HISTORIES = join(__dirname, '..', 'histories');

let slipway: SlipwayClient;
let harness: Harness;
const calls: string[] = [];
/** Builds block while `buildGate` is set, so a test can act during the build. */
let buildGate: Promise<void> | undefined;
let scannerBroken = false;

const acts: TestActivities = {
  async buildImage(input) {
    calls.push(`build:${input.version}`);
    while (buildGate) {
      Context.current().heartbeat();
      await Promise.race([buildGate, Context.current().cancelled, new Promise((r) => setTimeout(r, 100))]);
    }
    return { imageId: 'sha256:image', tag: input.tag, hostQueue: hostQueue('test-host'), host: 'test-host', steps: 3, durationMs: 5 };
  },
  async pushImage(input) {
    calls.push(`push:${input.tag}`);
    return { reference: `${input.tag.split(':v')[0]}@${DIGEST}`, digest: DIGEST, size: 100 };
  },
  async scanImage(input) {
    calls.push(`scan:${input.source}:${input.image}`);
    if (scannerBroken) throw ApplicationFailure.create({ message: 'trivy not found at /nowhere', type: 'ScannerUnavailableError', nonRetryable: true });
    return { scanner: 'mock', image: input.image, scannedAt: new Date().toISOString(), counts: { UNKNOWN: 0, LOW: 0, MEDIUM: 0, HIGH: 0, CRITICAL: 0 }, findings: [] };
  },
  async copyImage(input) {
    calls.push(`copy:${input.target}`);
    return { source: input.source, target: input.target, digest: input.expectDigest ?? DIGEST, mediaType: 'x', manifests: 1, blobsMounted: 2, blobsCopied: 0, blobsSkipped: 0, bytesCopied: 0, method: 'oci-copy' };
  },
  // These releases do not deploy (deploy compensation has its own workflow test).
  ...pick(noopActivities(DIGEST), ['packageChart', 'inspectDeploy', 'deployChart', 'rollbackDeploy', 'smokeTest', 'acquireDeployLock', 'releaseDeployLock', 'startCanary', 'setCanaryWeight', 'measureCanary', 'removeCanary']),
};

beforeAll(async () => {
  harness = await startHarness(NS, acts, 'test-host');
  slipway = harness.slipway;
});
afterAll(() => harness.stop());

const withPolicy = (approval: string, version = uniqueVersion(), requester = 'ci-bot'): ReleaseInput =>
  plan({ version, requester, config: sampleConfigText({ approval }) });

/** `on`: the client of the file's dev server unless a test passes the time-skipping server's. */
async function startAndAwaitApproval(input: ReleaseInput, on = slipway): Promise<string> {
  const { workflowId } = await on.start(input);
  const { status, reached } = await on.waitFor(workflowId, 'approval', { timeoutMs: 30_000, intervalMs: 100 });
  expect(reached).toBe(true);
  expect(status.phase).toBe('awaiting-approval');
  return workflowId;
}

async function eventTypes(workflowId: string, on = slipway): Promise<number[]> {
  const history = await on.handle(workflowId).fetchHistory();
  return (history.events ?? []).map((e) => e.eventType as number);
}

async function failureOf(workflowId: string, on = slipway): Promise<{ type?: string; message: string }> {
  try {
    await on.handle(workflowId).result();
  } catch (err) {
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const cause: any = (err as WorkflowFailedError).cause;
    return { type: cause?.type, message: cause?.message };
  }
  throw new Error('workflow did not fail');
}

test('happy path: build → push → approval → promote by digest, with status, search attributes and audit record', async () => {
  const input = plan();
  const id = await startAndAwaitApproval(input);
  expect(id).toBe(releaseWorkflowId('delivery', input.version));

  const desc = await slipway.handle(id).describe();
  expect(desc.typedSearchAttributes.get(SA.awaitingApproval)).toBe('prod');
  expect(desc.typedSearchAttributes.get(SA.digest)).toBe(DIGEST);
  expect(desc.typedSearchAttributes.get(SA.stage)).toBe('approval:prod');
  expect(desc.memo?.inbox).toMatchObject({ environment: 'prod', digest: DIGEST, requester: 'ci-bot', received: 0, required: 1, approvers: ['dave', 'group:release-managers'] });
  const inbox = await eventually(async () => {
    const rows = await slipway.list({ awaitingApproval: true, service: 'delivery' });
    return rows.find((r) => r.workflowId === id);
  });
  expect(inbox.awaitingApproval).toBe('prod');
  expect(inbox.inbox).toMatchObject({ environment: 'prod', digest: DIGEST });

  const response = await slipway.decide(id, 'approve', { approver: 'alice', comment: 'QA is green', digest: DIGEST });
  expect(response).toEqual({ environment: 'prod', decision: 'approved', received: 1, required: 1, complete: true });

  const result = await slipway.result(id);
  expect(result.phase).toBe('succeeded');
  expect(result.stages.map((s) => `${s.id}=${s.state}`)).toEqual(['plan=succeeded', 'build=succeeded', 'push=succeeded', 'approval:prod=succeeded', 'promote:prod=succeeded']);
  for (const s of result.stages) expect(Date.parse(s.endedAt!)).toBeGreaterThanOrEqual(Date.parse(s.startedAt!));
  expect(result.approvals).toEqual([expect.objectContaining({ environment: 'prod', approver: 'alice', decision: 'approved', comment: 'QA is green' })]);
  expect(result.references.prod).toBe(`127.0.0.1:5000/prod/delivery:${input.version}`);
  expect(calls).toContain(`copy:127.0.0.1:5000/prod/delivery:${input.version}`);
  const promote = result.stages.find((s) => s.id === 'promote:prod')!;
  expect(promote.result).toMatchObject({ digest: DIGEST, method: 'oci-copy' });

  const after = await slipway.handle(id).describe();
  expect(after.typedSearchAttributes.get(SA.stage)).toBe('done');
  expect(after.typedSearchAttributes.get(SA.awaitingApproval)).toBe('');
  expect(after.memo?.inbox ?? undefined).toBeUndefined(); // null removes the memo key

  const types = await eventTypes(id);
  expect(types.filter((t) => t === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)).toHaveLength(1);

  // SLIPWAY_RECORD_HISTORY=<name> records this run as test/histories/<name>.json for the replay test.
  if (process.env.SLIPWAY_RECORD_HISTORY) {
    const history = await slipway.handle(id).fetchHistory();
    writeFileSync(join(HISTORIES, `${process.env.SLIPWAY_RECORD_HISTORY}.json`), JSON.stringify((history as any).toJSON(), null, 1));
  }
});

test('refused approvals give their reason and leave no event in the history', async () => {
  buildGate = new Promise(() => undefined);
  const input = withPolicy('{ approvers: [group:release-managers, dave], minApprovals: 2, requesterCannotApprove: true, timeout: 72h }', uniqueVersion(), 'dave');
  const { workflowId: id } = await slipway.start(input);
  await eventually(async () => (await slipway.status(id)).stages[0].state === 'running');

  const refused = async (req: Parameters<SlipwayClient['decide']>[2], reason: RegExp) => {
    await expect(slipway.decide(id, 'approve', req)).rejects.toThrow(reason);
    await expect(slipway.decide(id, 'approve', req)).rejects.toBeInstanceOf(ApprovalRefusedError);
  };
  await refused({ approver: 'alice' }, /not awaiting approval/);
  buildGate = undefined;
  await slipway.waitFor(id, 'approval', { timeoutMs: 30_000, intervalMs: 100 });

  await refused({}, /token is required/);
  await refused({ approver: '' } as any, /token is required|approver/);
  await refused({ approver: 'mallory' }, /mallory is not an approver for "prod"/);
  await refused({ approver: 'dave' }, /dave requested this release and the "prod" policy forbids/);
  await refused({ approver: 'alice', digest: `sha256:${'b'.repeat(64)}` }, /digest mismatch|issued for digest/);
  await refused({ approver: 'alice', environment: 'qa' }, /awaits approval for "prod", not "qa"/);

  const first = await slipway.decide(id, 'approve', { approver: 'alice', comment: 'one' });
  expect(first).toMatchObject({ received: 1, required: 2, complete: false });
  await refused({ approver: 'alice' }, /alice has already approved/);
  expect((await slipway.status(id)).phase).toBe('awaiting-approval');

  // A group an authenticating edge vouches for counts (the UI's proxy headers, signed by the UI's key); the same
  // groups in a self-asserted (local) token would not.
  await refused({ approver: 'erin', groups: ['release-managers'] }, /erin is not an approver/);
  const second = await slipway.decide(id, 'approve', { approver: 'erin', groups: ['release-managers'], comment: 'two' }, edgeTokens(defaultKeyDir(), 'ui', 'proxy'));
  expect(second).toMatchObject({ received: 2, required: 2, complete: true });

  const result = await slipway.result(id);
  expect(result.phase).toBe('succeeded');
  expect(result.approvals.map((a) => a.approver)).toEqual(['alice', 'erin']);
  const types = await eventTypes(id);
  // Exactly the two accepted approvals are in the history; the ten refusals left nothing.
  expect(types.filter((t) => t === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)).toHaveLength(2);
  expect(types.filter((t) => t === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED)).toHaveLength(0);
});

test('rejection ends the release before promotion', async () => {
  const input = plan();
  const id = await startAndAwaitApproval(input);
  await slipway.decide(id, 'reject', { approver: 'bob', comment: 'smoke test flaky' });
  const failure = await failureOf(id);
  expect(failure.type).toBe('ApprovalRejectedError');
  expect(failure.message).toMatch(/rejected for prod by bob: smoke test flaky/);
  const status = await slipway.result(id);
  expect(status.phase).toBe('rejected');
  expect(status.stages.find((s) => s.id === 'promote:prod')!.state).toBe('skipped');
  expect(calls).not.toContain(`copy:127.0.0.1:5000/prod/delivery:${input.version}`);
});

test('the requester may withdraw (reject) their own release; an outsider may not reject', async () => {
  const id = await startAndAwaitApproval(plan({ requester: 'ci-bot' }));
  await expect(slipway.decide(id, 'reject', { approver: 'mallory' })).rejects.toThrow(/not an approver/);
  await slipway.decide(id, 'reject', { approver: 'ci-bot', comment: 'withdrawn' });
  expect((await slipway.result(id)).phase).toBe('rejected');
});

test('abort while waiting for approval', async () => {
  const id = await startAndAwaitApproval(plan());
  await slipway.abort(id, 'wrong branch', 'ci-bot');
  const failure = await failureOf(id);
  expect(failure.type).toBe('ReleaseAbortedError');
  const status = await slipway.result(id);
  expect(status.phase).toBe('aborted');
  expect(status.abort).toMatchObject({ reason: 'wrong branch', by: 'ci-bot' });
  expect(status.stages.find((s) => s.id === 'approval:prod')!.state).toBe('cancelled');
});

test('abort during the build cancels the running activity', async () => {
  buildGate = new Promise(() => undefined);
  try {
    const { workflowId: id } = await slipway.start(plan());
    await eventually(async () => (await slipway.status(id)).stages[0].state === 'running');
    await slipway.abort(id, 'stop', 'alice');
    const status = await slipway.result(id);
    expect(status.phase).toBe('aborted');
    expect(status.stages.map((s) => s.state)).toEqual(['succeeded', 'cancelled', 'skipped', 'skipped', 'skipped']);
  } finally {
    buildGate = undefined;
  }
});

describe('on a time-skipping server', () => {
  let skipping: Harness;
  beforeAll(async () => {
    skipping = await startTimeSkippingHarness(acts, 'test-host');
  });
  afterAll(() => skipping?.stop());

  test('the approval deadline is a durable timer; on expiry the policy outcome applies', async () => {
    // The policy's real 72 hours: awaiting the result lets the server jump to the timer.
    const on = skipping.slipway;
    const rejectOnTimeout = withPolicy('{ approvers: [alice], timeout: 72h }');
    const id = await startAndAwaitApproval(rejectOnTimeout, on);
    const failure = await failureOf(id, on);
    expect(failure.type).toBe('ApprovalExpiredError');
    expect((await on.result(id)).phase).toBe('expired');
    expect(await eventTypes(id, on)).toContain(EventType.EVENT_TYPE_TIMER_FIRED);

    const approveOnTimeout = withPolicy('{ approvers: [alice], timeout: 72h, onTimeout: approve }');
    const id2 = await startAndAwaitApproval(approveOnTimeout, on);
    const result = await on.result(id2);
    expect(result.phase).toBe('succeeded');
    expect(result.stages.find((s) => s.id === 'approval:prod')!.result).toMatchObject({ reason: expect.stringMatching(/onTimeout=approve/) });
  });
});

test('a CI re-run of the same release attaches to the running workflow', async () => {
  const input = plan();
  const first = await slipway.start(input);
  const second = await slipway.start(input);
  expect(first.attached).toBe(false);
  expect(second).toEqual({ workflowId: first.workflowId, runId: first.runId, attached: true });
  await slipway.waitFor(first.workflowId, 'approval', { timeoutMs: 30_000, intervalMs: 100 });
  await slipway.decide(first.workflowId, 'approve', { approver: 'carol' });
  expect((await slipway.result(first.workflowId)).phase).toBe('succeeded');
  // A succeeded release is not started again: a later re-run attaches to it too.
  expect((await slipway.start(input)).attached).toBe(true);
  expect(calls.filter((c) => c === `build:${input.version}`)).toHaveLength(1);
});

test('a release from an existing image skips the build and imports it', async () => {
  const input = plan({ image: `127.0.0.1:5000/delivery@${DIGEST}` });
  const id = await startAndAwaitApproval(input);
  const status = await slipway.status(id);
  expect(status.stages.map((s) => s.id)).toEqual(['plan', 'import', 'approval:prod', 'promote:prod']);
  expect(calls).not.toContain(`build:${input.version}`);
  await slipway.decide(id, 'approve', { approver: 'alice' });
  expect((await slipway.result(id)).digest).toBe(DIGEST);
});

test('a broken scanner fails the release before the push; nothing is pushed', async () => {
  scannerBroken = true;
  try {
    const input = plan({ config: sampleConfigText({ qaScan: '{ failOn: high }' }) });
    const { workflowId } = await slipway.start(input);
    const status = await slipway.result(workflowId);
    expect(status.phase).toBe('failed');
    expect(status.error).toMatch(/trivy not found/);
    expect(status.stages.map((s) => `${s.id}=${s.state}`)).toEqual(['plan=succeeded', 'build=succeeded', 'scan=failed', 'push=skipped', 'approval:prod=skipped', 'promote:prod=skipped']);
    expect(calls.some((c) => c.startsWith('push:') && c.includes(input.version))).toBe(false);
    expect((await failureOf(workflowId)).type).toBe('ScannerUnavailableError');
  } finally {
    scannerBroken = false;
  }
});

test('the workflow bundle carries no zod (it cost ~1 MB per cached workflow); the workflow checks input with rules.ts', () => {
  expect(readFileSync(workflowStack().bundlePath, 'utf8').includes('node_modules/zod')).toBe(false);
});

test('an invalid input that bypassed the client fails the workflow before any activity', async () => {
  const input = { ...plan(), version: 'not-semver' } as ReleaseInput;
  const h = await slipway.client.workflow.start('releaseWorkflow', { args: [input], taskQueue: 'slipway', workflowId: `release:delivery:bad-${uniqueVersion()}` });
  await expect(h.result()).rejects.toThrow(WorkflowFailedError);
  expect((await failureOf(h.workflowId)).message).toMatch(/input\.version: must be a semantic version/);
  const types = await eventTypes(h.workflowId);
  expect(types).not.toContain(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED);
});

// Every committed history (one per generation of the workflow code) must replay against the current code.
const histories = readdirSync(HISTORIES).filter((f) => f.endsWith('.json'));
test.each(histories)('replay: committed history %s replays against the current workflow code', async (file) => {
  // protobufjs' own JSON form (enum names, int64 as strings), as fetchHistory().toJSON() wrote it.
  const history = temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(join(HISTORIES, file), 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  // Replay under the release's own workflow id (signed runs check that their tokens were issued for it).
  const input = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0]?.data;
  const start = input ? (JSON.parse(Buffer.from(input).toString()) as { service: string; version: string }) : undefined;
  await Worker.runReplayHistory({ workflowBundle: { codePath: workflowStack().bundlePath } }, history, start ? releaseWorkflowId(start.service, start.version) : `release:${file}`);
});

test('the replay test has histories from before and after the inbox-memo patch', () => {
  const markers = histories.map((f) => readFileSync(join(HISTORIES, f), 'utf8').includes('EVENT_TYPE_MARKER_RECORDED'));
  expect(markers).toContain(true);
  expect(markers).toContain(false);
});

/** The patch ids a committed history recorded (its patch markers' payloads, decoded). */
function patchIdsOf(file: string): string[] {
  const history = temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(join(HISTORIES, file), 'utf8')));
  return (history.events ?? [])
    .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch')
    .map((e) => JSON.parse(Buffer.from(e.markerRecordedEventAttributes!.details!['patch-data']!.payloads![0].data!).toString()).id as string);
}

test('every patch id has a committed history from before it and one with it', () => {
  const recorded = histories.map(patchIdsOf);
  for (const id of Object.values(require('../../workflows/release/patches') as Record<string, string>).filter((v) => typeof v === 'string')) {
    expect([id, recorded.some((ids) => ids.includes(id))]).toEqual([id, true]);
    expect([id, recorded.some((ids) => !ids.includes(id))]).toEqual([id, true]);
  }
});
