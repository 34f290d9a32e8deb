/**
 * Smoke checks on real things: the HTTP check (production's default) against the sample service's real binary, the
 * rollout and Helm-test checks against a chart deployed by real Helm on the local QA cluster, and the chart's own
 * test hook image mode (`delivery check <url>`).
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createDeployActivities } from '../../activities';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { helmOptionsFromEnv } from '../../activities/helm/helm';
import { kube, uniqueNamespace } from '../deploy-helpers';
import { eventually, ROOT } from '../helpers';
import { testStack } from '../setup/stack-info';
import type { SmokeTestResult } from '../../model/types';

const run = promisify(execFile);
const BIN = join(ROOT, 'services', 'delivery', 'bin', 'delivery');
const PORT = 18431;
let service: ChildProcess;
const { helm, cluster } = kube();
const acts = createDeployActivities({ deployer: helm, cluster, credentials: new EnvCredentialStore({}, '/nonexistent'), pollMs: 200 });
const env = new MockActivityEnvironment();
const smoke = (input: Parameters<typeof acts.smokeTest>[0]) => env.run(acts.smokeTest, input) as Promise<SmokeTestResult>;
const target = { context: testStack().contexts.qa, namespace: uniqueNamespace('smoke') };

beforeAll(async () => {
  service = spawn(BIN, [], { env: { ...process.env, LISTEN: `127.0.0.1:${PORT}`, VERSION: 'smoke' }, stdio: 'ignore' });
  await eventually(async () => (await fetch(`http://127.0.0.1:${PORT}/healthz`)).ok, 10_000);
});
afterAll(() => service.kill());

test('http: passes on the expected status, fails with the reason otherwise', async () => {
  const ok = await smoke({ service: 'delivery', environment: 'qa', target, check: { type: 'http', url: `http://127.0.0.1:${PORT}/healthz`, expectStatus: 200, timeoutMs: 5_000 } });
  expect(ok.detail).toBe(`GET http://127.0.0.1:${PORT}/healthz answered 200`);
  await expect(smoke({ service: 'delivery', environment: 'qa', target, check: { type: 'http', url: `http://127.0.0.1:${PORT}/nope`, expectStatus: 200, timeoutMs: 1_500 } })).rejects.toMatchObject({
    type: 'SmokeTestFailedError',
    message: expect.stringContaining('answered 404, expected 200'),
  });
  await expect(smoke({ service: 'delivery', environment: 'qa', target, check: { type: 'http', url: 'http://127.0.0.1:1/healthz', expectStatus: 200, timeoutMs: 1_500 } })).rejects.toMatchObject({
    type: 'SmokeTestFailedError',
  });
});

test("the image's own check mode (what the chart's Helm test hook runs)", async () => {
  await expect(run(BIN, ['check', `http://127.0.0.1:${PORT}/healthz`])).resolves.toMatchObject({ stdout: expect.stringContaining('ok') });
  await expect(run(BIN, ['check', `http://127.0.0.1:${PORT}/missing`])).rejects.toMatchObject({ code: 1 });
});

test('rollout and helm-test on a chart deployed by real Helm; a chart without test hooks does not pass vacuously', async () => {
  const values = join(mkdtempSync(join(tmpdir(), 'slipway-smoke-')), 'values.json');
  writeFileSync(values, JSON.stringify({ image: { repository: '127.0.0.1:5000/delivery', digest: `sha256:${'d'.repeat(64)}` } }));
  const args = ['upgrade', 'delivery', join(ROOT, 'services', 'delivery', 'chart'), '--install', '--kube-context', target.context, '--namespace', target.namespace, '--create-namespace', '--values', values, '--wait'];
  await run(helmOptionsFromEnv().binary, args, { env: process.env });
  const rollout = await smoke({ service: 'delivery', environment: 'qa', target, check: { type: 'rollout' } });
  expect(rollout.detail).toBe('2/2 replicas available, all updated');
  const tested = await smoke({ service: 'delivery', environment: 'qa', target, check: { type: 'helm-test', timeoutMs: 60_000 } });
  expect(tested.detail).toBe('Helm test hooks succeeded: delivery-smoke');

  // The same chart without its test hook: helm test "passes" with nothing run; slipway refuses that.
  const noTests = mkdtempSync(join(tmpdir(), 'slipway-notests-'));
  await run('cp', ['-r', join(ROOT, 'services', 'delivery', 'chart'), noTests]);
  await run('rm', ['-r', join(noTests, 'chart', 'templates', 'tests')]);
  await run(helmOptionsFromEnv().binary, [...args.slice(0, 2), join(noTests, 'chart'), ...args.slice(3)], { env: process.env });
  await expect(smoke({ service: 'delivery', environment: 'qa', target, check: { type: 'helm-test', timeoutMs: 30_000 } })).rejects.toMatchObject({
    type: 'SmokeTestFailedError',
    message: expect.stringContaining('no Helm test hooks'),
  });
  await expect(smoke({ service: 'nothing', environment: 'qa', target, check: { type: 'rollout' } })).rejects.toMatchObject({ type: 'SmokeTestFailedError' });
}, 120_000);
