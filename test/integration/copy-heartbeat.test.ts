/**
 * A blob copy on the real Temporal server with a 2 s heartbeat timeout and no retries (issue 10, item 7): a layer
 * that takes three heartbeat timeouts to stream completes, because the copy heartbeats on a timer while bytes flow;
 * a copy whose source stalls stops heartbeating and is ended by the heartbeat timeout (a stall is not progress).
 */
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import { createRegistryActivities } from '../../activities';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { OciRegistry } from '../../activities/registry/oci';
import { ensureTemporal, type RegistryEndpoint } from '../../client/stack';
import type { RegistryRef } from '../../model/types';
import { quietRuntime } from '../helpers';
import { clientFor, localRegistries, pushRandomImage, watchedFetch } from '../registry-images';
import type { SingleActivityOptions } from '../workflows-fixture/single-activity';

const NS = 'slipway-it';
const QUEUE = `copy-heartbeat-${randomBytes(4).toString('hex')}`;
const HB: SingleActivityOptions = { heartbeatTimeoutMs: 2_000, startToCloseTimeoutMs: 60_000 };
const SIZE = 3 * 1024 * 1024;
let A: RegistryEndpoint;
let B: RegistryEndpoint;
let env: Record<string, string>;
let worker: Worker;
let running: Promise<void>;
let client: Client;
let connection: Connection;
let native: NativeConnection;
let slow: { digest: string; layer: { digest: string } };
let stalled: { digest: string; layer: { digest: string } };
const v = `v1.0.${Date.now() % 1e6}-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  quietRuntime();
  const [temporal, regs] = await Promise.all([ensureTemporal(), localRegistries()]);
  ({ a: A, b: B, env } = regs);
  const a = clientFor(A, 'dev', env);
  slow = await pushRandomImage(a, 'hb-slow', v, SIZE);
  stalled = await pushRandomImage(a, 'hb-stall', v, 256 * 1024);
  // 3 MiB at 54 KiB per 100 ms ≈ 5.7 s: nearly three heartbeat timeouts. The stalled source sends its first chunk,
  // then nothing for 8 s (longer than the heartbeat timeout, short enough for the worker to shut down afterwards).
  const watch = watchedFetch({ throttle: { match: (p) => p.endsWith(`/blobs/${slow.layer.digest}`), bytesPer100ms: 54 * 1024 } });
  const stall: typeof fetch = async (input, init) => {
    const res = await fetch(input, init);
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (!url.includes(`/blobs/${stalled.layer.digest}`) || !res.body || (init?.method ?? 'GET') !== 'GET') return res;
    const body = res.body;
    const paused = new ReadableStream<Uint8Array>({
      async start(controller) {
        let first = true;
        for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
          controller.enqueue(chunk);
          if (first) await new Promise((r) => setTimeout(r, 8_000));
          first = false;
        }
        controller.close();
      },
    });
    return new Response(paused, { status: res.status, headers: res.headers });
  };
  const credentials = new EnvCredentialStore(env, '/nonexistent');
  native = await NativeConnection.connect({ address: temporal.address });
  worker = await Worker.create({
    connection: native,
    namespace: NS,
    taskQueue: QUEUE,
    workflowsPath: require.resolve('../workflows-fixture/single-activity'),
    activities: {
      copyImage: createRegistryActivities({ registries: () => new OciRegistry(credentials, watch.impl) }).copyImage,
      copyImageStalling: createRegistryActivities({ registries: () => new OciRegistry(credentials, stall) }).copyImage,
    },
  });
  running = worker.run();
  connection = await Connection.connect({ address: temporal.address });
  client = new Client({ connection, namespace: NS });
}, 120_000);

afterAll(async () => {
  worker?.shutdown();
  await running?.catch(() => undefined);
  await connection?.close();
  await native?.close();
});

const dev = (): RegistryRef => ({ name: 'dev', type: 'oci', host: A.url, insecure: true });
const other = (): RegistryRef => ({ name: 'other', type: 'oci', host: B.url, insecure: true });
const run = (activity: string, input: unknown) =>
  client.workflow.execute('singleActivity', { taskQueue: QUEUE, workflowId: `copy-hb-${randomBytes(4).toString('hex')}`, args: [activity, input, HB] });

test('a 3 MiB layer streamed over ~6 s completes under a 2 s heartbeat timeout', async () => {
  const started = Date.now();
  const result: any = await run('copyImage', { source: `${A.url}/hb-slow@${slow.digest}`, sourceRegistry: dev(), target: `${B.url}/prod/hb-slow:${v}`, targetRegistry: other(), expectDigest: slow.digest });
  const took = Date.now() - started;
  expect(result).toMatchObject({ digest: slow.digest, bytesCopied: expect.any(Number) });
  expect(result.bytesCopied).toBeGreaterThanOrEqual(SIZE);
  expect(took).toBeGreaterThan(3 * HB.heartbeatTimeoutMs);
  expect(await clientFor(B, 'other', env).manifestDigest('prod/hb-slow', v)).toBe(slow.digest);
}, 90_000);

test('a copy whose source stops sending is ended by the heartbeat timeout', async () => {
  const err = await run('copyImageStalling', { source: `${A.url}/hb-stall@${stalled.digest}`, sourceRegistry: dev(), target: `${B.url}/prod/hb-stall:${v}`, targetRegistry: other(), expectDigest: stalled.digest }).catch((e) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  expect(err.cause?.cause).toMatchObject({ name: 'TimeoutFailure', timeoutType: 'HEARTBEAT' });
  // The last heartbeat said where the copy stood when it stalled.
  expect(err.cause.cause.lastHeartbeatDetails).toMatchObject({ phase: 'blobs', digest: stalled.layer.digest });
}, 90_000);
