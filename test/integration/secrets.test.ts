/**
 * Secrets stay out of Temporal history. A real release (build, scan, push, chart, deploys to both clusters,
 * approval, promotion; and one rejected after its QA deploy, so compensation and failures are in its history) is
 * searched by test/history-payloads.ts — every payload decoded — for the registry passwords, their basic-auth and
 * base64 forms, and the test kubeconfig's client keys, certificates and tokens.
 *
 * The check must be able to fail: throwaway workflows plant a secret in each hard-to-see place (heartbeat details,
 * a nested failure cause, failure details as basic auth, a local-activity marker, a signal, an Update, memo and a
 * search attribute) and the check must find each one, where it was planted.
 */
import { ApplicationFailure, Context, heartbeat } from '@temporalio/activity';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, bundleWorkflowCode } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SlipwayClient } from '../../client/client';
import { parseConfig, planRelease } from '../../model/plan';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { ALL_SEARCH_ATTRIBUTES } from '../../model/search-attributes';
import { deployConfigText, uniqueNamespace } from '../deploy-helpers';
import { findLeaks, findLeaksInWorkflow, kubeconfigSecrets, registrySecrets, type Secret } from '../history-payloads';
import { quietRuntime, ROOT, startHarness, uniqueVersion, type Harness } from '../helpers';
import { realActivities } from '../real-activities';
import { testStack } from '../setup/stack-info';

const NS = 'slipway-it';
const stack = testStack();
const env = {
  SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username,
  SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password,
};
const credentials = new EnvCredentialStore(env, '/nonexistent');

function stackSecrets(): Secret[] {
  const secrets = [...registrySecrets('registry', stack.registry), ...registrySecrets('registry-b', stack.registryB), ...kubeconfigSecrets(stack.kubeconfig)];
  return secrets;
}

describe('a real release with deploys', () => {
  let slipway: SlipwayClient;
  let harness: Harness;

  beforeAll(async () => {
    harness = await startHarness(NS, realActivities(credentials, 'secrets-host'), 'secrets-host');
    slipway = harness.slipway;
  });
  afterAll(() => harness?.stop());

  const ns = uniqueNamespace('secrets');
  // The QA scan runs Trivy with the registry login in its environment: one more place a password could escape.
  const config = deployConfigText({ ns, qaDeploy: '{ timeout: 60s, smoke: [ { type: rollout } ] }' }).replace(
    /(\n {2}qa:\n {4}registry: dev\n)/,
    '$1    scan: { failOn: critical }\n',
  );
  const planned = () => planRelease(parseConfig(config), { service: 'delivery', version: uniqueVersion(), requester: 'ci-bot' });

  test('the secrets the check looks for are real: both registry logins and the kubeconfig credentials', () => {
    const secrets = stackSecrets();
    expect(secrets.filter((s) => s.label.startsWith('kubeconfig')).length).toBeGreaterThan(0);
    expect(config).toContain('scan: { failOn: critical }');
  });

  test('an approved release (scan, push, deploys, promotion): no secret in any payload of its history', async () => {
    const { workflowId } = await slipway.start(planned());
    const { status, reached } = await slipway.waitFor(workflowId, 'approval', { timeoutMs: 180_000 });
    expect(status.error).toBeUndefined();
    expect(reached).toBe(true);
    await slipway.decide(workflowId, 'approve', { approver: 'alice', digest: status.digest });
    const result = await slipway.result(workflowId);
    expect(result.phase).toBe('succeeded');
    expect(result.stages.map((s) => s.id)).toEqual(expect.arrayContaining(['scan', 'push', 'deploy:qa', 'promote:prod', 'deploy:prod']));
    expect(await findLeaksInWorkflow(slipway.client, workflowId, stackSecrets())).toEqual([]);
  }, 300_000);

  test('a release rejected after its QA deploy (rollback, failures): no secret in its history', async () => {
    const { workflowId } = await slipway.start(planned());
    const { reached } = await slipway.waitFor(workflowId, 'approval', { timeoutMs: 180_000 });
    expect(reached).toBe(true);
    await slipway.decide(workflowId, 'reject', { approver: 'alice', comment: 'not today' });
    const result = await slipway.result(workflowId);
    expect(result.phase).toBe('rejected');
    expect(await findLeaksInWorkflow(slipway.client, workflowId, stackSecrets())).toEqual([]);
  }, 300_000);
});

describe('the check finds planted leaks', () => {
  const planted = `planted-${randomBytes(12).toString('hex')}`;
  const plantedUser = 'leaky-user';
  const secrets: Secret[] = [{ label: 'planted password', value: planted }];
  const taskQueue = `leaky-${randomBytes(4).toString('hex')}`;
  let worker: Worker;
  let running: Promise<void>;
  let client: Client;
  let connection: Connection;
  let native: NativeConnection;

  // A throwaway workflow (plain JS, bundled here) that reads no secret itself: activities hand them out.
  const LEAKY_WORKFLOW = `
const wf = require('@temporalio/workflow');
const acts = wf.proxyActivities({ startToCloseTimeout: '30s', heartbeatTimeout: '2s', retry: { maximumAttempts: 1 } });
const local = wf.proxyLocalActivities({ startToCloseTimeout: '10s' });
exports.leaky = async function leaky(plant) {
  if (plant === 'heartbeat') { try { await acts.heartbeatThenStall(); } catch (e) { /* timed out, as planned */ } }
  if (plant === 'failure-cause') { try { await acts.failWithNestedCause(); } catch (e) { /* failed, as planned */ } }
  if (plant === 'failure-details') { try { await acts.failWithBasicAuthDetails(); } catch (e) { /* failed, as planned */ } }
  if (plant === 'marker') await local.localResult();
  if (plant === 'signal' || plant === 'update') {
    let got = false;
    wf.setHandler(wf.defineSignal('poke'), () => { got = true; });
    wf.setHandler(wf.defineUpdate('poke'), () => { got = true; return 'ok'; });
    await wf.condition(() => got);
  }
  return 'done';
};
`;

  beforeAll(async () => {
    quietRuntime();
    const dir = join(ROOT, '.slipway', 'leaky-workflow');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'index.js'), LEAKY_WORKFLOW);
    const { code } = await bundleWorkflowCode({ workflowsPath: join(dir, 'index.js'), logger: { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} } as never });
    native = await NativeConnection.connect({ address: stack.temporal });
    worker = await Worker.create({
      connection: native,
      namespace: NS,
      taskQueue,
      workflowBundle: { code },
      activities: {
        async heartbeatThenStall() {
          for (let i = 0; i < 5; i++) {
            heartbeat({ progress: i, note: `login ${plantedUser}:${planted}` });
            await Context.current().sleep(100);
          }
          // No more heartbeats: the heartbeat timeout ends the attempt and the server records the last details.
          await Context.current().sleep(10_000).catch(() => undefined);
        },
        async failWithNestedCause() {
          const inner = new Error(`dial registry: bad credentials ${planted}`);
          throw ApplicationFailure.create({ message: 'push failed', type: 'PushFailed', nonRetryable: true, cause: ApplicationFailure.create({ message: 'auth failed', cause: inner }) });
        },
        async failWithBasicAuthDetails() {
          const header = `Basic ${Buffer.from(`${plantedUser}:${planted}`).toString('base64')}`;
          throw ApplicationFailure.create({ message: 'request failed', nonRetryable: true, details: [{ headers: { authorization: header } }] });
        },
        async localResult() {
          return { token: Buffer.from(planted).toString('base64') };
        },
      },
    });
    running = worker.run();
    connection = await Connection.connect({ address: stack.temporal });
    client = new Client({ connection, namespace: NS });
  }, 120_000);

  afterAll(async () => {
    worker?.shutdown();
    await running;
    await connection?.close();
    await native?.close();
  });

  async function leaksOf(plant: string, extra: { memo?: Record<string, unknown>; searchAttributes?: Record<string, string[]>; act?: (id: string) => Promise<void>; after?: (history: any) => Promise<void> } = {}) {
    const workflowId = `leaky-${plant}-${randomBytes(4).toString('hex')}`;
    const handle = await client.workflow.start('leaky', { taskQueue, workflowId, args: [plant], memo: extra.memo, searchAttributes: extra.searchAttributes, workflowExecutionTimeout: '2m' });
    await extra.act?.(workflowId);
    await handle.result();
    const leaks = await findLeaksInWorkflow(client, workflowId, secrets);
    await extra.after?.(await handle.fetchHistory());
    // Every case sanity-checks that the same history is clean when searched for a value that is not in it.
    expect(findLeaks(await handle.fetchHistory() as never, [{ label: 'absent', value: `absent-${randomBytes(8).toString('hex')}` }])).toEqual([]);
    return leaks.map((l) => `${l.form} @ ${l.where}`);
  }

  test('in heartbeat details (recorded with the heartbeat timeout)', async () => {
    expect(await leaksOf('heartbeat')).toEqual(expect.arrayContaining([expect.stringMatching(/^raw @ .*ActivityTaskTimedOut.*lastHeartbeatDetails/i)]));
  }, 60_000);

  test('in the message of a failure cause two levels deep', async () => {
    expect(await leaksOf('failure-cause')).toEqual(expect.arrayContaining([expect.stringMatching(/^raw @ .*ActivityTaskFailed.*\.failure\.cause\.cause\.message/i)]));
  }, 60_000);

  test('in failure details, only as a basic-auth header (base64 of user:password)', async () => {
    const leaks = await leaksOf('failure-details', {
      // A search of the raw history JSON alone (the old check) misses it: the payload is base64 of JSON holding base64.
      after: async (history) => expect(JSON.stringify(history.toJSON()).includes(planted) || JSON.stringify(history.toJSON()).includes(Buffer.from(planted).toString('base64'))).toBe(false),
    });
    expect(leaks).toEqual(expect.arrayContaining([expect.stringMatching(/^raw @ .*ActivityTaskFailed.*applicationFailureInfo\.details/i)]));
  }, 60_000);

  test('in a local activity result (a marker), base64-encoded', async () => {
    expect(await leaksOf('marker')).toEqual(expect.arrayContaining([expect.stringMatching(/@ .*MarkerRecorded.*details/i)]));
  }, 60_000);

  test('in a signal input', async () => {
    const leaks = await leaksOf('signal', { act: (id) => client.workflow.getHandle(id).signal('poke', { password: planted }) });
    expect(leaks).toEqual(expect.arrayContaining([expect.stringMatching(/^raw @ .*WorkflowExecutionSignaled.*input/i)]));
  }, 60_000);

  test('in Update arguments', async () => {
    const leaks = await leaksOf('update', { act: async (id) => void (await client.workflow.getHandle(id).executeUpdate('poke', { args: [{ token: planted }] })) });
    expect(leaks).toEqual(expect.arrayContaining([expect.stringMatching(/^raw @ .*WorkflowExecutionUpdateAccepted.*input/i)]));
  }, 60_000);

  test('in memo and in a search attribute', async () => {
    const sa = ALL_SEARCH_ATTRIBUTES[0].name;
    const leaks = await leaksOf('none', { memo: { note: planted }, searchAttributes: { [sa]: [planted] } });
    expect(leaks).toEqual(expect.arrayContaining([expect.stringMatching(/^raw @ .*WorkflowExecutionStarted.*\.memo\./i), expect.stringMatching(/^raw @ .*WorkflowExecutionStarted.*\.searchAttributes\./i)]));
  }, 60_000);
});
