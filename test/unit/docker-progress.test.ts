/**
 * The Docker adapter's progress while the daemon is silent: a build step or a layer upload that sends no event for a
 * while still heartbeats (on a timer) with step n/m or layers n/m and bytes; cancellation ends the request at once.
 * The daemon is faked by streams fed with its JSON events; the event parsing is docker-modem's own.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { CancelledFailure } from '@temporalio/common';
import { PassThrough } from 'node:stream';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { DockerImageBuilder } from '../../activities/docker/builder';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { heartbeat, signal } from '../../activities/common';

const Modem = require('docker-modem');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const send = (s: PassThrough, e: unknown) => s.write(`${JSON.stringify(e)}\n`);

function fakeDocker(stream: PassThrough): { docker: Docker; seen: { abortSignal?: AbortSignal } } {
  const seen: { abortSignal?: AbortSignal } = {};
  const docker = {
    modem: new Modem(),
    buildImage: async (_ctx: unknown, opts: { abortSignal?: AbortSignal }) => {
      seen.abortSignal = opts.abortSignal;
      return stream;
    },
    getImage: () => ({
      push: async (opts: { abortSignal?: AbortSignal }) => {
        seen.abortSignal = opts.abortSignal;
        return stream;
      },
      inspect: async () => ({ Id: 'sha256:feed' }),
    }),
  } as unknown as Docker;
  return { docker, seen };
}

const context = mkdtempSync(join(tmpdir(), 'slipway-progress-'));
writeFileSync(join(context, 'Dockerfile'), 'FROM scratch\n');
const creds = new EnvCredentialStore({}, '/nonexistent');
const registry = { name: 'dev', type: 'oci' as const, host: '127.0.0.1:5000', insecure: true };

function activity(): { env: MockActivityEnvironment; beats: any[] } {
  const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 300 });
  const beats: any[] = [];
  env.on('heartbeat', (d: unknown) => beats.push(d));
  return { env, beats };
}

test('a silent build step heartbeats on a timer with step n/m and the last line', async () => {
  const stream = new PassThrough();
  const { docker } = fakeDocker(stream);
  const { env, beats } = activity();
  const built = env.run(() =>
    new DockerImageBuilder(docker, creds).build({ contextDir: context, dockerfile: 'Dockerfile', tag: 'x:1', args: {}, labels: {}, signal: signal() }, heartbeat),
  );
  send(stream, { stream: 'Step 1/2 : FROM scratch\n' });
  send(stream, { stream: 'Step 2/2 : RUN sleep 600\n' });
  send(stream, { stream: ' ---> Running in 0123456789ab\n' });
  await sleep(100);
  const before = beats.length;
  await sleep(800); // the daemon says nothing
  expect(beats.length - before).toBeGreaterThanOrEqual(5);
  expect(beats[beats.length - 1]).toMatchObject({ step: 'Step 2/2 : RUN sleep 600', stepIndex: 2, stepCount: 2, lastLine: ' ---> Running in 0123456789ab', elapsedMs: expect.any(Number) });
  send(stream, { aux: { ID: 'sha256:abc' } });
  stream.end();
  await expect(built).resolves.toEqual({ imageId: 'sha256:abc', steps: 2 });
});

test('cancelling a build aborts its request and fails as cancelled, not as a build error', async () => {
  const stream = new PassThrough();
  const { docker, seen } = fakeDocker(stream);
  const { env } = activity();
  const built = env.run(() =>
    new DockerImageBuilder(docker, creds).build({ contextDir: context, dockerfile: 'Dockerfile', tag: 'x:1', args: {}, labels: {}, signal: signal() }, heartbeat),
  );
  send(stream, { stream: 'Step 1/1 : RUN sleep 600\n' });
  await sleep(100);
  env.cancel();
  await expect(built).rejects.toBeInstanceOf(CancelledFailure);
  expect(seen.abortSignal?.aborted).toBe(true); // docker-modem aborts the HTTP request with it
  expect(stream.destroyed).toBe(true);
});

test('a push heartbeats while a layer uploads silently, with layers n/m and bytes', async () => {
  const stream = new PassThrough();
  const { docker } = fakeDocker(stream);
  const { env, beats } = activity();
  const pushed = env.run(() => new DockerImageBuilder(docker, creds).push('127.0.0.1:5000/x:1', registry, heartbeat, signal()));
  send(stream, { status: 'The push refers to repository [127.0.0.1:5000/x]' });
  send(stream, { status: 'Preparing', id: 'aaaaaaaaaaaa' });
  send(stream, { status: 'Preparing', id: 'bbbbbbbbbbbb' });
  send(stream, { status: 'Layer already exists', id: 'bbbbbbbbbbbb' });
  send(stream, { status: 'Pushing', id: 'aaaaaaaaaaaa', progressDetail: { current: 512, total: 4096 } });
  await sleep(100);
  const before = beats.length;
  await sleep(800);
  expect(beats.length - before).toBeGreaterThanOrEqual(5);
  expect(beats[beats.length - 1]).toMatchObject({ pushing: '127.0.0.1:5000/x:1', status: 'Pushing', layers: 2, layersDone: 1, bytes: 512 });
  send(stream, { status: 'Pushed', id: 'aaaaaaaaaaaa' });
  send(stream, { status: '1: digest: sha256:d size: 1', aux: { Tag: '1', Digest: `sha256:${'d'.repeat(64)}`, Size: 1 } });
  stream.end();
  await expect(pushed).resolves.toEqual({ digest: `sha256:${'d'.repeat(64)}`, size: 1 });
});
