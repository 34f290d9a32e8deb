/**
 * The `slipway` CLI as CI runs it (the compiled binary, a real dev server; activities mocked): --json documents on
 * stdout, documented exit codes, and bad input refused before anything starts.
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowNotFoundError } from '@temporalio/client';
import { noopActivities } from '../../bench/noop-worker';
import type { SlipwayClient } from '../../client/client';
import { releaseWorkflowId } from '../../model/identifiers';
import { ROOT, runCli, sampleConfigText, startHarness, uniqueVersion, type Harness } from '../helpers';
import { testStack } from '../setup/stack-info';
import { configFromFile, createPlanActivities } from '../../workers/plan';

const NS = 'slipway-test';
const DIGEST = `sha256:${'c'.repeat(64)}`;
const dir = mkdtempSync(join(tmpdir(), 'slipway-cli-'));
const CONFIG = join(dir, 'slipway.yaml');
writeFileSync(CONFIG, sampleConfigText({ approval: '{ approvers: [alice, bob], timeout: 72h }' }));

let slipway: SlipwayClient;
let harness: Harness;

beforeAll(async () => {
  // The workers read the plan from the same slipway.yaml file the CLI is given: the real path, not the tests' plans.
  harness = await startHarness(NS, noopActivities(DIGEST, 'cli-host'), 'cli-host', createPlanActivities({ config: configFromFile(CONFIG) }));
  slipway = harness.slipway;
});
afterAll(() => harness.stop());

const cli = (...args: string[]) => runCli(['--config', CONFIG, ...args], { TEMPORAL_ADDRESS: testStack().temporal, TEMPORAL_NAMESPACE: NS, SLIPWAY_USER: 'ci-bot' });

async function exists(workflowId: string): Promise<boolean> {
  try {
    await slipway.handle(workflowId).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

test('start --wait-for approval, approve, wait: JSON on stdout, exit 0, progress on stderr', async () => {
  const version = uniqueVersion();
  const started = await cli('release', 'start', '--service', 'delivery', '--version', version, '--wait-for', 'approval', '--json');
  expect(started.code).toBe(0);
  expect(started.json).toMatchObject({ workflowId: releaseWorkflowId('delivery', version), attached: false, reached: true, status: { phase: 'awaiting-approval', digest: DIGEST } });
  expect(started.stderr).toMatch(/started release:delivery/);

  const again = await cli('release', 'start', '--service', 'delivery', '--version', version, '--json');
  expect(again.json).toMatchObject({ attached: true, runId: started.json.runId });

  const list = await cli('release', 'list', '--awaiting-approval', '--service', 'delivery', '--json');
  expect(list.code).toBe(0);
  expect(Array.isArray(list.json)).toBe(true);

  const refused = await cli('release', 'approve', started.json.workflowId, '--as', 'mallory', '--json');
  expect(refused.code).toBe(3);
  expect(refused.json.error).toMatch(/mallory is not an approver/);

  const approved = await cli('release', 'approve', '--service', 'delivery', '--version', version, '--as', 'alice', '--comment', 'ok', '--json');
  expect(approved.code).toBe(0);
  expect(approved.json).toMatchObject({ decision: 'approved', complete: true });

  const done = await cli('release', 'wait', started.json.workflowId, '--json');
  expect(done.code).toBe(0);
  expect(done.json.status.phase).toBe('succeeded');
  const status = await cli('release', 'status', started.json.workflowId);
  expect(status.stdout).toMatch(/succeeded\s+promote:prod/);
});

describe('identity through the CLI (rows of the bypass matrix)', () => {
  // The same plan, but a CLI that holds no key: identity.local off and no SLIPWAY_EDGE_URL.
  const NOKEY = join(dir, 'nokey.yaml');
  writeFileSync(NOKEY, sampleConfigText({ approval: '{ approvers: [alice, bob], timeout: 72h }' }).replace('identity: { issuers: [ { name: ui } ], local: true }', 'identity: { issuers: [ { name: ui } ] }'));
  const keyless = (...args: string[]) => runCli(['--config', NOKEY, ...args], { TEMPORAL_ADDRESS: testStack().temporal, TEMPORAL_NAMESPACE: NS, SLIPWAY_USER: 'ci-bot' });

  test('a CLI without a key cannot start a release: it fails before anything runs (requester not verified)', async () => {
    const r = await keyless('release', 'start', '--service', 'delivery', '--version', uniqueVersion(), '--wait-for', 'approval', '--json');
    expect(r.code).toBe(1);
    expect(r.json.status.error).toMatch(/requester not verified: token: a signed decision token is required/);
    expect(r.json.status.stages.map((s: { id: string }) => s.id)).toEqual(['plan']);
  });

  test('a CLI without a key cannot approve, whoever --as names (exit 3)', async () => {
    const started = await cli('release', 'start', '--service', 'delivery', '--version', uniqueVersion(), '--wait-for', 'approval', '--json');
    expect(started.json.status.requesterIdentity).toMatchObject({ issuer: 'local', selfAsserted: true });
    expect(started.json.status.plan.source).toBe(CONFIG);
    const r = await keyless('release', 'approve', started.json.workflowId, '--as', 'alice', '--json');
    expect(r.code).toBe(3);
    expect(r.json.error).toMatch(/token is required/);
    // Without a key the CLI says so rather than send an abort signal a signed run would ignore.
    const abort = await keyless('release', 'abort', started.json.workflowId, '--reason', 'x', '--as', 'alice', '--json');
    expect(abort.code).toBe(2);
    expect(abort.json.error).toMatch(/no key to sign/);
    expect((await slipway.status(started.json.workflowId)).phase).toBe('awaiting-approval');
    const ok = await cli('release', 'abort', started.json.workflowId, '--reason', 'done', '--as', 'alice', '--json');
    expect(ok.code).toBe(0);
    const status = await cli('release', 'status', started.json.workflowId);
    expect(status.stdout).toMatch(/requested by ci-bot \(self-asserted, local key\)/);
  });
});

test('exit codes: rejected → 3, still running after --timeout → 4, aborted → 3', async () => {
  const v1 = uniqueVersion();
  await cli('release', 'start', '--service', 'delivery', '--version', v1, '--wait-for', 'approval');
  const running = await cli('release', 'wait', releaseWorkflowId('delivery', v1), '--timeout', '1s', '--json');
  expect(running.code).toBe(4);
  expect(running.json.reached).toBe(false);
  await cli('release', 'reject', releaseWorkflowId('delivery', v1), '--as', 'bob', '--comment', 'no');
  expect((await cli('release', 'wait', releaseWorkflowId('delivery', v1))).code).toBe(3);

  const v2 = uniqueVersion();
  await cli('release', 'start', '--service', 'delivery', '--version', v2, '--wait-for', 'approval');
  expect((await cli('release', 'abort', releaseWorkflowId('delivery', v2), '--reason', 'test')).code).toBe(0);
  const aborted = await cli('release', 'wait', releaseWorkflowId('delivery', v2), '--json');
  expect(aborted.code).toBe(3);
  expect(aborted.json.status.phase).toBe('aborted');
});

test.each([
  [['--version', '1.0'], /version: must be a semantic version/],
  [['--service', 'nope'], /service: unknown service "nope"/],
  [['--image', 'delivery;rm'], /image: must be a fully qualified image reference/],
  [['--git-sha', '$(id)'], /gitSha: must be 7 to 40/],
  [['--requester', 'a b'], /requester: must be a user name/],
])('bad input %j exits 2 with the field named, and starts nothing', async (extra, message) => {
  const version = uniqueVersion();
  const args = ['release', 'start', '--service', 'delivery', '--version', version, '--json', ...extra];
  const r = await cli(...args);
  expect(r.code).toBe(2);
  expect(r.json.error).toMatch(message);
  expect(await exists(releaseWorkflowId('delivery', version))).toBe(false);
  const svc = extra[0] === '--service' ? extra[1] : 'delivery';
  const ver = extra[0] === '--version' ? extra[1] : version;
  expect(await exists(releaseWorkflowId(svc, ver))).toBe(false);
});

test('usage errors exit 2', async () => {
  expect((await cli('release', 'start', '--version', 'v1.0.0')).code).toBe(2);
  expect((await cli('release', 'status', 'not-an-id', '--json')).code).toBe(2);
  expect((await cli('no-such-command')).code).toBe(2);
});

describe('scan evaluate', () => {
  const reports = join(ROOT, 'test', 'fixtures', 'trivy', 'reports');
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, 'failOn: high\nallow:\n  - { id: CVE-2021-23337, reason: "template() unused", expires: 2099-01-01 }\n');

  test('a report that breaks the policy exits 1 and lists the findings', async () => {
    const r = await cli('scan', 'evaluate', '--report', join(reports, 'vulnerable.json'), '--policy', policyFile, '--json');
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ pass: false, violations: [expect.objectContaining({ id: 'CVE-2020-8203', pkg: 'lodash', installed: '4.17.15', fixed: '4.17.19' })] });
  });

  test('an allowlisted finding passes until expiry; --now moves the clock', async () => {
    const ok = await cli('scan', 'evaluate', '--report', join(reports, 'allowlisted.json'), '--policy', policyFile);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^PASS at threshold HIGH/);
    expect(ok.stdout).toMatch(/allowed CVE-2021-23337 in lodash until 2099-01-01/);
    const later = await cli('scan', 'evaluate', '--report', join(reports, 'allowlisted.json'), '--policy', policyFile, '--now', '2099-01-02');
    expect(later.code).toBe(1);
    expect(later.stdout).toMatch(/expired on 2099-01-01/);
  });

  test('an environment of slipway.yaml as the policy, and bad input as usage errors', async () => {
    writeFileSync(CONFIG, sampleConfigText({ approval: '{ approvers: [alice, bob], timeout: 72h }', prodScan: '{ failOn: medium }' }));
    expect((await cli('scan', 'evaluate', '--report', join(reports, 'clean.json'), '--policy', 'prod')).code).toBe(0);
    expect((await cli('scan', 'evaluate', '--report', join(reports, 'allowlisted.json'), '--policy', 'prod')).code).toBe(1);
    const noPolicy = await cli('scan', 'evaluate', '--report', join(reports, 'clean.json'), '--policy', 'qa', '--json');
    expect(noPolicy.code).toBe(2);
    expect(noPolicy.json.error).toMatch(/environment "qa" has no scan policy/);
    writeFileSync(join(dir, 'bad.json'), '{"SchemaVersion": 1}');
    const bad = await cli('scan', 'evaluate', '--report', join(dir, 'bad.json'), '--policy', policyFile, '--json');
    expect(bad.code).toBe(2);
    expect(bad.json.error).toMatch(/unsupported Trivy report schema 1/);
  });
});

describe('canary judge', () => {
  const write = (name: string, content: unknown) => {
    const f = join(dir, name);
    writeFileSync(f, typeof content === 'string' ? content : JSON.stringify(content));
    return f;
  };
  // A deterministic pseudo-random series (the judge itself must be deterministic too).
  const series = (seed: number, mu: number, sd: number, n = 60) => {
    let s = seed;
    const r = () => ((s = (s * 16807) % 2147483647) / 2147483647);
    return Array.from({ length: n }, () => mu + sd * (r() + r() + r() - 1.5));
  };
  const config = write('judge.yaml', 'metrics:\n  - { name: latency, groups: [latency], direction: increase }\n  - { name: errors, groups: [errors], direction: increase, critical: true }\ngroupWeights: { latency: 50, errors: 50 }\n');

  test('a healthy canary passes (exit 0); a critical regression fails (exit 1) with the metric named', async () => {
    const ok = await cli('canary', 'judge', '--config', config, '--data', write('ok.json', { metrics: [{ name: 'latency', baseline: series(1, 100, 10), canary: series(2, 100, 10) }, { name: 'errors', baseline: series(3, 1, 0.2), canary: series(4, 1, 0.2) }] }), '--json');
    expect(ok.code).toBe(0);
    expect(ok.json).toMatchObject({ result: 'Pass', score: 100, metrics: [{ name: 'latency', classification: 'Pass' }, { name: 'errors', classification: 'Pass' }] });
    const bad = await cli('canary', 'judge', '--config', config, '--data', write('bad.json', { metrics: [{ name: 'latency', baseline: series(1, 100, 10), canary: series(2, 100, 10) }, { name: 'errors', baseline: series(3, 1, 0.2), canary: series(4, 2, 0.2) }] }), '--json');
    expect(bad.code).toBe(1);
    expect(bad.json).toMatchObject({ result: 'Fail', score: 0, reason: 'a critical metric failed', metrics: [{ classification: 'Pass' }, { name: 'errors', classification: 'High', critical: true }] });
  });

  test('no data is never a pass', async () => {
    const r = await cli('canary', 'judge', '--config', config, '--data', write('empty.json', { metrics: [{ name: 'latency', baseline: [], canary: [1, 2] }] }), '--json');
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ result: 'Fail', score: 0, reason: '2 of 2 metrics had no data' });
  });

  test.each([
    ['an unknown field', 'metrics:\n  - { name: a, groups: [g], colour: red }\n', /metrics\.0: Unrecognized key.*colour/i],
    ['marginal above pass', 'metrics:\n  - { name: a, groups: [g] }\nthresholds: { pass: 70, marginal: 80 }\n', /thresholds\.marginal: must not exceed thresholds\.pass \(70\)/],
    // Kayenta gives a mean-ratio bound below 1 a meaning (it validates none of these numbers); a negative one has none.
    ['a negative mean-ratio bound', 'metrics:\n  - { name: a, groups: [g], effectSize: { allowedIncrease: -0.9 } }\n', /metrics\.0\.effectSize\.allowedIncrease/],
    ['a CLES threshold above 1', 'metrics:\n  - { name: a, groups: [g], effectSize: { measure: cles, allowedIncrease: 1.5 } }\n', /metrics\.0\.effectSize\.allowedIncrease: must be between 0 and 1 for cles/],
    ['a confidence level of 1', 'judge: { confidenceLevel: 1 }\nmetrics:\n  - { name: a, groups: [g] }\n', /judge\.confidenceLevel: must be between 0 and 1/],
    ['a weight for a group nobody has', 'metrics:\n  - { name: a, groups: [g] }\ngroupWeights: { h: 10 }\n', /groupWeights\.h: names a group no metric belongs to/],
  ])('refuses a config with %s (exit 2, the field named)', async (_n, text, message) => {
    const r = await cli('canary', 'judge', '--config', write('c.yaml', text), '--data', write('d.json', { metrics: [] }), '--json');
    expect(r.code).toBe(2);
    expect(r.json.error).toMatch(message);
  });
});
