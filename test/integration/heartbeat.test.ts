/**
 * Long steps on the real Temporal server, each in a workflow that gives its activity a 2 s heartbeat timeout:
 * a scan (Trivy, faked by a script) and a Docker build step that run three times longer than that succeed, because
 * they heartbeat on a timer; cancelling the activity ends the tool's whole process tree (tool, children,
 * grandchildren) and stops the daemon's build container; so does the tool's own timeout.
 */
import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBuilderActivities, createScanActivities } from '../../activities';
import { DockerImageBuilder } from '../../activities/docker/builder';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { TrivyScanner } from '../../activities/scanner/trivy';
import { dockerFromEnv } from '../../workers/builder';
import { quietRuntime } from '../helpers';
import { alive, recordedPids, script, scratchDir, spawnsSleepers, waitUntil } from '../processes';
import { testStack } from '../setup/stack-info';
import type { SingleActivityOptions } from '../workflows-fixture/single-activity';

const NS = 'slipway-it';
const QUEUE = `heartbeat-${randomBytes(4).toString('hex')}`;
const HB = { heartbeatTimeoutMs: 2_000, startToCloseTimeoutMs: 60_000 };
const stack = testStack();
const docker = dockerFromEnv({ DOCKER_HOST: stack.docker });
const dir = scratchDir('heartbeat');
const credentials = new EnvCredentialStore({}, '/nonexistent');

// Fake trivy: the image's repository picks the behaviour; hang-scan runs the script written for its tag.
const trivy = script(
  dir,
  'trivy',
  `for a in "$@"; do img="$a"; done
case "$img" in
  */slow-scan:*) echo 'scanning slowly' >&2; sleep 6; echo '{"SchemaVersion":2,"ArtifactName":"x","Results":[]}' ;;
  */hang-scan:*) exec '${dir}'/"hang-\${img##*:}.sh" ;;
  *) echo "unexpected image $img" >&2; exit 3 ;;
esac`,
);
const hangScan = (tag: string) => {
  const pidFile = join(dir, `pids-${tag}`);
  script(dir, `hang-${tag}.sh`, spawnsSleepers(pidFile));
  return { image: `127.0.0.1:5000/hang-scan:${tag}`, pidFile };
};

// Build contexts in a workspace of their own (not a git repository: the builds read it as it is).
const marker = `slipway-hb-${randomBytes(4).toString('hex')}`;
for (const [name, run] of [
  ['slow-step', 'echo "$SLIPWAY_VERSION" > /version && sleep 6'],
  ['hang-step', `sleep 1000 && echo ${marker}`],
]) {
  mkdirSync(join(dir, 'ws', name), { recursive: true });
  writeFileSync(join(dir, 'ws', name, 'Dockerfile'), `FROM slipway/busybox:local\nARG SLIPWAY_VERSION\nRUN ${run}\n`);
}

let worker: Worker;
let running: Promise<void>;
let client: Client;
let connection: Connection;
let native: NativeConnection;

beforeAll(async () => {
  quietRuntime();
  native = await NativeConnection.connect({ address: stack.temporal });
  const scanner = (timeoutMs: number) => createScanActivities({ scanner: new TrivyScanner({ binary: trivy, timeoutMs }, credentials) }).scanImage;
  worker = await Worker.create({
    connection: native,
    namespace: NS,
    taskQueue: QUEUE,
    workflowsPath: require.resolve('../workflows-fixture/single-activity'),
    activities: {
      scanImage: scanner(60_000),
      // trivy gets --timeout 1s; runTool ends it 2 s after that.
      scanImageQuickTimeout: scanner(1_000),
      ...createBuilderActivities({ builder: new DockerImageBuilder(docker, credentials), hostId: 'heartbeat-host', workspace: join(dir, 'ws') }),
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
  for (const f of ['a', 'b', 'c'].map((t) => join(dir, `pids-${t}`))) for (const p of recordedPids(f) ?? []) if (alive(p)) process.kill(p, 'SIGKILL');
});

const start = (activity: string, input: unknown, opts: SingleActivityOptions = HB) =>
  client.workflow.start('singleActivity', { taskQueue: QUEUE, workflowId: `${QUEUE}-${activity}-${randomBytes(3).toString('hex')}`, args: [activity, input, opts] });

const failureOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    const chain: string[] = [];
    for (let e: any = err.cause; e; e = e.cause) chain.push(`${e.constructor?.name}${e.type ? `(${e.type})` : ''}${e.timeoutType ? `(timeout ${e.timeoutType})` : ''}: ${e.message}`);
    return chain.join(' <- ');
  }
  return 'succeeded';
};

/** The details of the running activity's last heartbeat, as the server holds them. */
const lastHeartbeat = async (handle: WorkflowHandle): Promise<unknown> => {
  const pending = (await handle.describe()).raw.pendingActivities?.[0];
  return JSON.parse(Buffer.from(pending?.heartbeatDetails?.payloads?.[0]?.data ?? '{}').toString('utf8'));
};

const buildInput = (context: string) => ({
  service: 'hb',
  version: `v1.0.0-${randomBytes(4).toString('hex')}`,
  created: new Date().toISOString(),
  context,
  dockerfile: 'Dockerfile',
  args: {},
  tag: `127.0.0.1:5000/${marker}:${context}`,
});

test('a scan three times longer than the heartbeat timeout succeeds', async () => {
  const handle = await start('scanImage', { image: '127.0.0.1:5000/slow-scan:1', source: 'docker' });
  const t0 = Date.now();
  // Past the heartbeat timeout, the pending activity shows what the last heartbeat said.
  await new Promise((r) => setTimeout(r, 3_000));
  expect(await lastHeartbeat(handle)).toMatchObject({ scanning: '127.0.0.1:5000/slow-scan:1', tool: 'trivy', lastLine: 'scanning slowly', elapsedMs: expect.any(Number) });
  await expect(handle.result()).resolves.toMatchObject({ scanner: 'trivy', counts: { CRITICAL: 0 } });
  expect(Date.now() - t0).toBeGreaterThanOrEqual(6_000);
});

test('cancelling the scan ends trivy, its children and grandchildren', async () => {
  const { image, pidFile } = hangScan('a');
  const handle = await start('scanImage', { image, source: 'docker' });
  let pids: number[] | undefined;
  await waitUntil(() => Boolean((pids = recordedPids(pidFile))), 20_000, 'the fake trivy started its children');
  expect(pids!.every(alive)).toBe(true);
  await handle.cancel();
  const t0 = Date.now();
  await waitUntil(() => pids!.every((p) => !alive(p)), 5_000, `pids ${pids!.join(' ')} ended`);
  expect(await failureOf(handle.result())).toMatch(/CancelledFailure/);
  expect(Date.now() - t0).toBeLessThan(8_000);
});

test("trivy's timeout ends its process tree too (ScannerTimeoutError)", async () => {
  const { image, pidFile } = hangScan('b');
  const handle = await start('scanImageQuickTimeout', { image, source: 'docker' });
  let pids: number[] | undefined;
  await waitUntil(() => Boolean((pids = recordedPids(pidFile))), 20_000, 'the fake trivy started its children');
  expect(await failureOf(handle.result())).toMatch(/ScannerTimeoutError/);
  await waitUntil(() => pids!.every((p) => !alive(p)), 3_000, `pids ${pids!.join(' ')} ended`);
});

test('a Docker build step three times longer than the heartbeat timeout succeeds, with step progress', async () => {
  const input = buildInput('slow-step');
  const handle = await start('buildImage', input);
  await new Promise((r) => setTimeout(r, 3_500));
  expect(await lastHeartbeat(handle)).toMatchObject({ step: expect.stringMatching(/^Step \d+\/\d+ : RUN echo/), stepIndex: expect.any(Number), stepCount: expect.any(Number), elapsedMs: expect.any(Number) });
  const built = (await handle.result()) as { tag: string; steps: number };
  expect(built.tag).toBe(input.tag);
  expect(built.steps).toBeGreaterThanOrEqual(3);
  await docker.getImage(input.tag).remove({ force: true }).catch(() => undefined);
});

test('cancelling a build stops the daemon’s build container', async () => {
  const input = buildInput('hang-step');
  const handle = await start('buildImage', input);
  const building = async () => (await docker.listContainers()).filter((c) => c.Command.includes(marker));
  let found: Awaited<ReturnType<typeof building>> = [];
  const deadline = Date.now() + 60_000;
  while (!found.length && Date.now() < deadline) {
    found = await building();
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(found).toHaveLength(1);
  // Well past the heartbeat timeout: the build is alive only because it heartbeats.
  await new Promise((r) => setTimeout(r, 5_000));
  expect(await building()).toHaveLength(1);
  await handle.cancel();
  expect(await failureOf(handle.result())).toMatch(/CancelledFailure/);
  const stopped = Date.now() + 15_000;
  while ((await building()).length && Date.now() < stopped) await new Promise((r) => setTimeout(r, 200));
  expect(await building()).toEqual([]);
});
