/**
 * The real pipeline: a real Docker engine builds the sample service, pushes it to a real registry (htpasswd auth),
 * and promotion copies the manifest by digest — within one registry and between two — checked through the
 * registry API. Also: a broken Dockerfile, a registry that is down during the push, and secrets kept out of history.
 */
import { temporal } from '@temporalio/proto';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { OciRegistryClient } from '../../activities/registry/oci-client';
import { ensureRegistry } from '../../client/stack';
import { stopDaemon } from '../../client/stack/process';
import type { SlipwayClient } from '../../client/client';
import { dockerFromEnv } from '../../workers/builder';
import { realActivities } from '../real-activities';
import { plan, sampleConfigText, startHarness, uniqueVersion, type Harness } from '../helpers';
import { testStack } from '../setup/stack-info';

const NS = 'slipway-it';
const EventType = temporal.api.enums.v1.EventType;
const stack = testStack();
const docker = dockerFromEnv({ DOCKER_HOST: stack.docker });
const FLAKY_PORT = 5002;

// Credentials reach the activities through the worker's environment only.
const env = {
  SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username,
  SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password,
  SLIPWAY_REGISTRY_OTHER_USERNAME: stack.registryB.username,
  SLIPWAY_REGISTRY_OTHER_PASSWORD: stack.registryB.password,
};
let flakyCreds = { username: '', password: '' };
const credentials = {
  lookup(host: string, name?: string) {
    if (host === `127.0.0.1:${FLAKY_PORT}`) return flakyCreds;
    return new EnvCredentialStore(env, '/nonexistent').lookup(host, name);
  },
};

let slipway: SlipwayClient;
let harness: Harness;

beforeAll(async () => {
  harness = await startHarness(NS, realActivities(credentials, 'it-host'), 'it-host');
  slipway = harness.slipway;
});

afterAll(async () => {
  await harness.stop();
  await stopDaemon('registry-flaky');
});

const registryClient = (url: string, name: string) => new OciRegistryClient({ host: url, name }, credentials);

async function approveAndFinish(id: string) {
  const { status, reached } = await slipway.waitFor(id, 'approval', { timeoutMs: 120_000 });
  expect(status.error).toBeUndefined();
  expect(reached).toBe(true);
  await slipway.decide(id, 'approve', { approver: 'alice', comment: 'integration', digest: status.digest });
  return slipway.result(id);
}

test('build, push and promote the sample service: same digest in prod/, labels set, no secret in history', async () => {
  const input = plan();
  const { workflowId } = await slipway.start(input);
  const result = await approveAndFinish(workflowId);
  expect(result.phase).toBe('succeeded');
  expect(result.digest).toMatch(/^sha256:[a-f0-9]{64}$/);

  const reg = registryClient(stack.registry.url, 'dev');
  const qa = await reg.getManifest('delivery', input.version);
  const prod = await reg.getManifest('prod/delivery', input.version);
  expect(qa.digest).toBe(result.digest);
  expect(prod.digest).toBe(result.digest);
  const promote = result.stages.find((s) => s.id === 'promote:prod')!.result!;
  // Within one registry every blob is mounted, none is copied through the worker.
  expect(promote).toMatchObject({ method: 'oci-copy', blobsCopied: 0, bytesCopied: 0 });
  expect((promote.blobsMounted as number) + (promote.blobsSkipped as number)).toBeGreaterThanOrEqual(2);

  // Built from the worktree (no gitSha): its HEAD and dirtiness are recorded, no revision label claims an exact commit.
  expect(result.stages.find((s) => s.id === 'build')!.result).toMatchObject({ revision: expect.stringMatching(/^[0-9a-f]{40}$/), dirty: expect.any(Boolean) });
  const image = await docker.getImage(`127.0.0.1:5000/delivery:${input.version}`).inspect();
  expect(image.Config.Labels).toMatchObject({
    'org.opencontainers.image.version': input.version,
    'org.opencontainers.image.source': 'https://example.com/slipway/delivery',
    'org.opencontainers.image.created': result.startedAt,
  });

  const history = JSON.stringify((await slipway.handle(workflowId).fetchHistory() as any).toJSON());
  const decoded = JSON.stringify(await slipway.handle(workflowId).fetchHistory()) + history;
  for (const secret of [stack.registry.password, stack.registryB.password, Buffer.from(stack.registry.password).toString('base64')]) {
    expect(decoded.includes(secret)).toBe(false);
    expect(history.includes(secret)).toBe(false);
  }
}, 180_000);

test('promotion between two registries streams the blobs and keeps the digest', async () => {
  const input = plan({ config: sampleConfigText({ prodRegistryUrl: stack.registryB.url }) });
  const { workflowId } = await slipway.start(input);
  const result = await approveAndFinish(workflowId);
  expect(result.phase).toBe('succeeded');
  const promote = result.stages.find((s) => s.id === 'promote:prod')!.result!;
  // No mounts across registries: each blob is streamed, or already in the target repository from an earlier run
  // (the config blob is new for every version, so at least that one is streamed).
  expect(promote.blobsMounted).toBe(0);
  expect(promote.blobsCopied).toBeGreaterThanOrEqual(1);
  expect((promote.blobsCopied as number) + (promote.blobsSkipped as number)).toBeGreaterThanOrEqual(2);
  expect(promote.bytesCopied).toBeGreaterThan(0);
  const onB = await registryClient(stack.registryB.url, 'other').getManifest('prod/delivery', input.version);
  expect(onB.digest).toBe(result.digest);
  expect(result.references.prod).toBe(`${stack.registryB.url}/prod/delivery:${input.version}`);
}, 180_000);

test('a broken Dockerfile fails the release at once, non-retryably, with the failing step and the log tail', async () => {
  const input = plan({ service: 'broken' });
  const { workflowId } = await slipway.start(input);
  const result = await slipway.result(workflowId);
  expect(result.phase).toBe('failed');
  expect(result.error).toMatch(/docker build failed at "Step 2\/\d+ : COPY this-file-does-not-exist \/x"/);
  const history = await slipway.handle(workflowId).fetchHistory();
  const failed = history.events!.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED);
  expect(failed).toHaveLength(1);
  const failure = failed[0].activityTaskFailedEventAttributes!.failure!;
  expect(failure.applicationFailureInfo?.type).toBe('BuildFailedError');
  expect(failure.applicationFailureInfo?.nonRetryable).toBe(true);
  const details = JSON.parse(Buffer.from(failure.applicationFailureInfo!.details!.payloads![0].data!).toString());
  expect(details.step).toMatch(/^Step 2\/\d+ : COPY this-file-does-not-exist \/x$/);
  expect(details.logTail.join('\n')).toMatch(/this-file-does-not-exist/);
  const started = history.events!.filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED);
  expect(started.every((e) => e.activityTaskStartedEventAttributes!.attempt === 1)).toBe(true);
  expect(result.stages.find((s) => s.id === 'push')!.state).toBe('skipped');
}, 120_000);

test('a registry that is down during the push is retried, and the release succeeds once it is back', async () => {
  const flaky = await ensureRegistry('registry-flaky', FLAKY_PORT);
  flakyCreds = { username: flaky.username, password: flaky.password };
  await stopDaemon('registry-flaky');
  const input = plan({ config: sampleConfigText({ registryUrl: `127.0.0.1:${FLAKY_PORT}` }) });
  const { workflowId } = await slipway.start(input);
  // Wait until the push has failed at least once against the stopped registry.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const d = await slipway.handle(workflowId).describe();
    const push = d.raw.pendingActivities?.find((a) => a.activityType?.name === 'pushImage');
    if (push && (push.attempt ?? 0) >= 2) break;
    if (Date.now() > deadline) throw new Error('push was never retried');
    await new Promise((r) => setTimeout(r, 250));
  }
  await ensureRegistry('registry-flaky', FLAKY_PORT);
  const result = await approveAndFinish(workflowId);
  expect(result.phase).toBe('succeeded');
  const onFlaky = await registryClient(`127.0.0.1:${FLAKY_PORT}`, 'dev').getManifest('prod/delivery', input.version);
  expect(onFlaky.digest).toBe(result.digest);
}, 180_000);

test('a release whose image does not exist fails non-retryably at import', async () => {
  const input = plan({ image: `${stack.registry.url}/delivery:does-not-exist-${uniqueVersion()}` });
  const { workflowId } = await slipway.start(input);
  const result = await slipway.result(workflowId);
  expect(result.phase).toBe('failed');
  expect(result.error).toMatch(/not found/);
}, 60_000);
