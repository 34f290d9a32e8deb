/**
 * The canary loop of the release workflow on the real dev server, activities mocked (the measurements are made up
 * here; the real ones come from Prometheus in the integration test): a healthy canary is promoted, a worse one is
 * rolled back at the first bad interval, an inconclusive one waits for a person, operators promote or roll back.
 * The cases that only wait on timers run on a time-skipping server with intervals and timeouts of real lengths.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { noopActivities } from '../../bench/noop-worker';
import type { SlipwayActivities } from '../../activities/contract';
import { parseConfig, planRelease } from '../../model/plan';
import type { SlipwayClient } from '../../client/client';
import { seededGaussian } from '../../workflows/canary/judge';
import { canaryText, deployConfigText } from '../deploy-helpers';
import { eventually, outcomeOf, startHarness, startTimeSkippingHarness, uniqueVersion, type Harness } from '../helpers';

const NS = 'slipway-test';
const calls: string[] = [];
/** How much worse the canary's latency is than the baseline's (1 = the same). */
let latencyFactor = 1;
let errorsCanary = 0;
let measurement: 'data' | 'empty' | 'bad-query' = 'data';
const gauss = seededGaussian(42);
const series = (mean: number, n = 30) => Array.from({ length: n }, () => mean * (1 + 0.05 * gauss()));

const acts: SlipwayActivities = {
  ...noopActivities(`sha256:${'9'.repeat(64)}`, 'canary-wf-host'),
  async inspectDeploy() {
    return { revision: 3, status: 'deployed' };
  },
  async deployChart(i) {
    calls.push(`helm:${i.environment}`);
    return { release: i.service, revision: 4, resumed: false, image: '', replicas: 2, available: 2, durationMs: 1 };
  },
  async startCanary(i) {
    calls.push(`start:${i.environment}`);
    return { canary: `${i.service}-canary`, stableImage: 'old', stableReplicas: 3 };
  },
  async setCanaryWeight(i) {
    calls.push(`weight:${i.weight}`);
    return { weight: i.weight, canaryReplicas: 1 };
  },
  async measureCanary(i) {
    calls.push('measure');
    if (measurement === 'bad-query') throw ApplicationFailure.create({ message: 'errors: Prometheus query failed (400 bad_data): parse error', type: 'MetricQueryError', nonRetryable: true });
    if (measurement === 'empty') return { metrics: i.queries.map((q) => ({ name: q.name, baseline: [], canary: [] })) };
    return {
      metrics: i.queries.map((q) =>
        q.name === 'errors' ? { name: q.name, baseline: series(0.001), canary: series(0.001 + errorsCanary) } : { name: q.name, baseline: series(0.05), canary: series(0.05 * latencyFactor) },
      ),
    };
  },
  async removeCanary() {
    calls.push('remove');
    return { removed: true };
  },
};

let slipway: SlipwayClient;
let harness: Harness;
beforeAll(async () => {
  harness = await startHarness(NS, acts, 'canary-wf-host');
  slipway = harness.slipway;
});
afterAll(() => harness.stop());
beforeEach(() => {
  calls.length = 0;
  latencyFactor = 1;
  errorsCanary = 0;
  measurement = 'data';
});

const STEPS = '[ { setWeight: 20 }, { analysis: { duration: 2s, interval: 1s } }, { setWeight: 50 }, { analysis: { duration: 2s, interval: 1s } } ]';
function input(steps = STEPS) {
  const text = deployConfigText({ ns: 'cw', approval: '{ approvers: [alice], timeout: 1h }', prodCanary: canaryText({ prometheus: 'http://127.0.0.1:1', steps }) });
  return planRelease(parseConfig(text), { service: 'delivery', version: uniqueVersion(), requester: 'ci-bot' });
}

/** Started and approved (on the dev server unless `on` is the time-skipping server's client). */
async function approved(steps?: string, on = slipway): Promise<string> {
  const { workflowId } = await on.start(input(steps));
  await on.waitFor(workflowId, 'approval', { timeoutMs: 30_000, intervalMs: 100 });
  await on.decide(workflowId, 'approve', { approver: 'alice' });
  return workflowId;
}




test('an inconclusive canary waits for a person; operators can promote it', async () => {
  latencyFactor = 1.3; // latency High (not critical, weight 20): a score of 80, between marginal and pass
  const id = await approved('[ { setWeight: 20 }, { analysis: { duration: 1s, interval: 1s } } ]');
  const waiting = await eventually(async () => {
    const s = await slipway.status(id);
    return s.canary?.state === 'awaiting-decision' ? s : undefined;
  });
  expect(waiting.canary!.intervals.at(-1)).toMatchObject({ result: 'Marginal' });
  await expect(slipway.canary(id, { action: 'promote', by: '' })).rejects.toThrow(/who acts must be named|malformed/);
  // Only the environment's approvers steer its canary.
  await expect(slipway.canary(id, { action: 'promote', by: 'oncall' })).rejects.toThrow(/oncall is not an approver for "prod"/);
  await slipway.canary(id, { action: 'promote', by: 'alice', reason: 'latency within SLO' });
  const { status } = await outcomeOf(slipway, id);
  expect(status.phase).toBe('succeeded');
  expect(status.canary).toMatchObject({ state: 'promoted', decision: { action: 'promote', by: 'alice', reason: 'latency within SLO' } });
}, 60_000);

test('an operator action is scoped to its environment: a promote sent to QA\'s canary does not promote production\'s', async () => {
  const text = deployConfigText({
    ns: 'cw',
    approval: '{ approvers: [alice], timeout: 1h }',
    qaCanary: canaryText({ prometheus: 'http://127.0.0.1:1', steps: '[ { setWeight: 20 }, { pause: {} }, { analysis: { duration: 1s, interval: 1s } } ]' }),
    prodCanary: canaryText({ prometheus: 'http://127.0.0.1:1', steps: STEPS }),
  });
  const { workflowId: id } = await slipway.start(planRelease(parseConfig(text), { service: 'delivery', version: uniqueVersion(), requester: 'ci-bot' }));
  await eventually(async () => (await slipway.status(id)).canary?.state === 'paused');
  // QA has no approval policy: its requester steers its canary.
  await slipway.canary(id, { action: 'promote', by: 'ci-bot', reason: 'qa looks fine' });
  await slipway.waitFor(id, 'approval', { timeoutMs: 30_000, intervalMs: 100 });
  await slipway.decide(id, 'approve', { approver: 'alice' });
  const { status } = await outcomeOf(slipway, id);
  expect(status.phase).toBe('succeeded');
  // Before the fix the QA promote was still pending and production's canary was promoted with no analysis at all.
  expect(status.canary).toMatchObject({ environment: 'prod', state: 'promoted' });
  expect(status.canary!.decision).toBeUndefined();
  expect(status.canary!.intervals.length).toBeGreaterThanOrEqual(2);
}, 60_000);

test('an operator rolls a running canary back during an open-ended pause', async () => {
  const id = await approved('[ { setWeight: 10 }, { analysis: { duration: 1s, interval: 1s } }, { pause: {} } ]');
  await eventually(async () => (await slipway.status(id)).canary?.state === 'paused');
  await slipway.canary(id, { action: 'rollback', by: 'alice', reason: 'customer reports' });
  const { type, status } = await outcomeOf(slipway, id);
  expect(type).toBe('CanaryFailedError');
  expect(status.error).toContain('canary rolled back by alice: customer reports');
  expect(calls.at(-1)).not.toBe('helm:prod');
  expect(calls).toContain('remove');
}, 60_000);

describe('on a time-skipping server: analysis intervals and decision timeouts of their real lengths', () => {
  /** Ten-minute analyses judged every five minutes; awaiting the result lets the server jump over the waits. */
  const REAL_STEPS = '[ { setWeight: 20 }, { analysis: { duration: 10m, interval: 5m } }, { setWeight: 50 }, { analysis: { duration: 10m, interval: 5m } } ]';
  let skipping: Harness;
  beforeAll(async () => {
    skipping = await startTimeSkippingHarness(acts, 'canary-wf-host');
  });
  afterAll(() => skipping?.stop());

  test('a canary as good as the baseline is promoted: weights, intervals judged, Helm upgraded, canary removed', async () => {
    const id = await approved(REAL_STEPS, skipping.slipway);
    const { type, status } = await outcomeOf(skipping.slipway, id);
    expect(type).toBeUndefined();
    expect(status.phase).toBe('succeeded');
    const prodCalls = calls.slice(calls.indexOf('start:prod'));
    expect(prodCalls).toEqual(['start:prod', 'weight:20', 'measure', 'measure', 'weight:50', 'measure', 'measure', 'helm:prod', 'remove']);
    expect(status.canary).toMatchObject({ environment: 'prod', state: 'promoted', weight: 50 });
    expect(status.canary!.intervals).toHaveLength(4);
    for (const i of status.canary!.intervals) expect(i.result).toBe('Pass');
    expect(status.stages.find((s) => s.id === 'canary:prod')).toMatchObject({ state: 'succeeded', result: { intervals: 4, finalResult: 'Pass', promotedRevision: 4 } });
    expect(status.deployments?.prod).toMatchObject({ state: 'deployed', revision: 4 });
    // SLIPWAY_RECORD_CANARY_HISTORY=<name> records this run as test/histories/<name>.json for the replay test (deploys,
    // canary, promotion); release-deploy-canary.json predates the incremental measurements, release-canary-incremental.json has them.
    const record = process.env.SLIPWAY_RECORD_CANARY_HISTORY;
    if (record) {
      const history = await skipping.slipway.handle(id).fetchHistory();
      writeFileSync(join(__dirname, '..', 'histories', `${record === '1' ? 'release-deploy-canary' : record}.json`), JSON.stringify((history as any).toJSON(), null, 1));
    }
  }, 60_000);

  test('a canary with a higher error rate fails at the first interval and is removed; Helm is never upgraded', async () => {
    errorsCanary = 0.05;
    const id = await approved(REAL_STEPS, skipping.slipway);
    const { type, status } = await outcomeOf(skipping.slipway, id);
    expect(type).toBe('CanaryFailedError');
    expect(status.error).toMatch(/score 0\.0 ≤ marginal 75 \(errors High/);
    expect(calls.slice(calls.indexOf('start:prod'))).toEqual(['start:prod', 'weight:20', 'measure', 'remove']);
    expect(status.canary).toMatchObject({ state: 'rolled-back' });
    expect(status.deployments?.prod.state).toBe('rolled-back');
    // QA was deployed by this release too: it is rolled back with it.
    expect(status.stages.find((s) => s.id === 'rollback:qa')?.state).toBe('succeeded');
  }, 60_000);

  test('a query Prometheus rejects fails the analysis and rolls back; it never counts as a pass', async () => {
    measurement = 'bad-query';
    const id = await approved(REAL_STEPS, skipping.slipway);
    const { type, status } = await outcomeOf(skipping.slipway, id);
    expect(type).toBe('MetricQueryError');
    expect(status.error).toContain('parse error');
    expect(calls.slice(calls.indexOf('start:prod'))).toEqual(['start:prod', 'weight:20', 'measure', 'remove']);
  }, 60_000);

  test('no data at all: the canary fails rather than passing', async () => {
    measurement = 'empty';
    const id = await approved(REAL_STEPS, skipping.slipway);
    const { type, status } = await outcomeOf(skipping.slipway, id);
    expect(type).toBe('CanaryFailedError');
    // Kayenta's rules: with nanStrategy replace, missing errors read as zeros (Pass); latency has no data (Nodata);
    // half the metrics without data scores 0.
    expect(status.canary!.intervals[0]).toMatchObject({ score: 0, result: 'Fail' });
    expect(status.canary!.intervals[0].metrics.map((m) => m.classification)).toEqual(['Pass', 'Nodata']);
    expect(calls).not.toContain('helm:prod');
  }, 60_000);

  test('an inconclusive canary nobody decides on is rolled back when its decision timeout (the default hour) passes', async () => {
    latencyFactor = 1.3; // Marginal, as in the operator test above
    const id = await approved('[ { setWeight: 20 }, { analysis: { duration: 5m, interval: 5m } } ]', skipping.slipway);
    const { type, status } = await outcomeOf(skipping.slipway, id);
    expect(type).toBe('CanaryFailedError');
    expect(status.error).toMatch(/canary inconclusive \(score 80\.0\) and no decision within 3600000 ms/);
    expect(calls).toContain('remove');
    expect(calls).not.toContain('helm:prod');
  }, 60_000);

  test('an open-ended pause nobody ends rolls the canary back after the decision timeout; a timed one ends by itself', async () => {
    const stuck = await approved('[ { setWeight: 20 }, { analysis: { duration: 5m, interval: 5m } }, { pause: {} } ]', skipping.slipway);
    const { type, status } = await outcomeOf(skipping.slipway, stuck);
    expect(type).toBe('CanaryFailedError');
    expect(status.error).toMatch(/nobody promoted the canary within 3600000 ms/);

    calls.length = 0;
    const timed = await approved('[ { setWeight: 20 }, { pause: { duration: 2h } }, { analysis: { duration: 5m, interval: 5m } } ]', skipping.slipway);
    const after = await outcomeOf(skipping.slipway, timed);
    expect(after.type).toBeUndefined();
    expect(after.status.canary).toMatchObject({ state: 'promoted' });
    expect(calls.slice(calls.indexOf('start:prod'))).toEqual(['start:prod', 'weight:20', 'measure', 'helm:prod', 'remove']);
  }, 60_000);
});
