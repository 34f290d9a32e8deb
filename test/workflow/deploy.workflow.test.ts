/**
 * The deploy side of the release workflow on the real dev server with mocked activities: the order of lock,
 * capture, deploy, smoke and unlock; compensation after a rejection and after a failed smoke test; and a rollback
 * that itself fails, which must be reported rather than swallowed.
 */
import { ApplicationFailure } from '@temporalio/common';
import { noopActivities } from '../../bench/noop-worker';
import type { SlipwayActivities } from '../../activities/contract';
import { parseConfig, planRelease } from '../../model/plan';
import type { SlipwayClient } from '../../client/client';
import { deployConfigText } from '../deploy-helpers';
import { outcomeOf, startHarness, uniqueVersion, type Harness } from '../helpers';

const NS = 'slipway-test';
const DIGEST = `sha256:${'f'.repeat(64)}`;
const calls: string[] = [];
let smokeFails = false;
let rollbackFails = false;

const noop = noopActivities(DIGEST, 'deploy-wf-host');
const acts: SlipwayActivities = {
  ...noop,
  async acquireDeployLock(i) {
    calls.push(`lock:${i.environment}:${i.whenBusy}`);
    return { acquired: true, waitedMs: 0 };
  },
  async releaseDeployLock(i) {
    calls.push(`unlock:${i.environment}`);
    return { released: true };
  },
  async inspectDeploy(i) {
    calls.push(`inspect:${i.target.namespace}`);
    return { revision: 4, status: 'deployed', appVersion: 'v0.9.0' };
  },
  async deployChart(i) {
    calls.push(`deploy:${i.environment}:${i.image.repository}@${i.image.digest === DIGEST ? 'digest' : i.image.digest}`);
    return { release: i.service, revision: 5, resumed: false, image: `${i.image.repository}@${i.image.digest}`, replicas: 2, available: 2, durationMs: 1 };
  },
  async smokeTest(i) {
    calls.push(`smoke:${i.environment}:${i.check.type}`);
    if (smokeFails) throw ApplicationFailure.create({ message: 'smoke test "helm-test" failed', type: 'SmokeTestFailedError', nonRetryable: true });
    return { check: i.check.type, detail: 'ok', durationMs: 1 };
  },
  async rollbackDeploy(i) {
    calls.push(`rollback:${i.environment}:${i.toRevision}`);
    if (rollbackFails) throw ApplicationFailure.create({ message: 'helm rollback: cluster on fire', type: 'ClusterConfigError', nonRetryable: true });
    return { action: 'rolled-back', toRevision: i.toRevision, revision: 6, note: 'ok' };
  },
};

let slipway: SlipwayClient;
let harness: Harness;
beforeAll(async () => {
  harness = await startHarness(NS, acts, 'deploy-wf-host');
  slipway = harness.slipway;
});
afterAll(() => harness.stop());
beforeEach(() => {
  calls.length = 0;
  smokeFails = false;
  rollbackFails = false;
});

const input = () => planRelease(parseConfig(deployConfigText({ ns: 'wf' })), { service: 'delivery', version: uniqueVersion(), requester: 'ci-bot' });


test('QA: lock, capture, deploy by digest, smoke, unlock; a rejection at production rolls QA back to the captured revision', async () => {
  const { workflowId } = await slipway.start(input());
  const { reached } = await slipway.waitFor(workflowId, 'approval', { timeoutMs: 30_000, intervalMs: 100 });
  expect(reached).toBe(true);
  await slipway.decide(workflowId, 'reject', { approver: 'alice', comment: 'not today' });
  expect((await outcomeOf(slipway, workflowId)).type).toBe('ApprovalRejectedError');
  expect(calls).toEqual([
    'inspect:wf-qa',
    'inspect:wf',
    'lock:qa:wait',
    'inspect:wf-qa',
    'deploy:qa:127.0.0.1:5000/delivery@digest',
    'smoke:qa:rollout',
    'smoke:qa:helm-test',
    'unlock:qa',
    // compensation takes the lock again, but refuses to wait for a newer release that may hold it by now
    'lock:qa:refuse',
    'rollback:qa:4',
    'unlock:qa',
  ]);
  const s = await slipway.status(workflowId);
  expect(s.phase).toBe('rejected');
  expect(s.deployments?.qa).toMatchObject({ previousRevision: 4, revision: 5, state: 'rolled-back' });
  expect(s.stages.find((x) => x.id === 'rollback:qa')).toMatchObject({ state: 'succeeded', result: { action: 'rolled-back', toRevision: 4 } });
});

test('a failed smoke test fails the release and rolls the environment back while the lock is still held', async () => {
  smokeFails = true;
  const { workflowId } = await slipway.start(input());
  expect((await outcomeOf(slipway, workflowId)).type).toBe('SmokeTestFailedError');
  expect(calls.slice(-3)).toEqual(['smoke:qa:rollout', 'rollback:qa:4', 'unlock:qa']);
  expect(calls.filter((c) => c.startsWith('lock:'))).toEqual(['lock:qa:wait']);
});

test('a rollback that fails is reported in the release error and the deployment record', async () => {
  smokeFails = true;
  rollbackFails = true;
  const { workflowId } = await slipway.start(input());
  expect((await outcomeOf(slipway, workflowId)).type).toBe('SmokeTestFailedError');
  const s = await slipway.status(workflowId);
  expect(s.error).toContain('rollback of qa failed: helm rollback: cluster on fire');
  expect(s.deployments?.qa.state).toBe('rollback-failed');
  expect(s.stages.find((x) => x.id === 'rollback:qa')?.state).toBe('failed');
  expect(calls.at(-1)).toBe('unlock:qa');
});
