/** The Docker Engine adapter of the ImageBuilder port (dockerode). */
import type Docker from 'dockerode';
import { readdirSync, lstatSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { ApplicationFailure } from '@temporalio/activity';
import { ErrorTypes } from '../../model/errors';
import type { RegistryRef } from '../../model/types';
import { classifyNetwork, classifyRegistryMessage, portError } from '../errors';
import type { BuildRequest, ImageBuilder, Progress } from '../ports';
import type { CredentialStore } from '../registry/credentials';
import { cancellation, tickInterval } from '../exec';

export class BuildError extends Error {
  constructor(
    message: string,
    readonly step: string | undefined,
    readonly logTail: string[],
  ) {
    super(message);
    this.name = 'BuildError';
  }
}

export class PushError extends Error {
  override name = 'PushError';
}

/** A failed build in the shared vocabulary: the Dockerfile's fault, final; the failing step and log tail travel as details. */
export function buildFailure(err: BuildError): ApplicationFailure {
  return portError(ErrorTypes.BuildFailed, err.message, { step: err.step, logTail: err.logTail });
}

/**
 * A failed push in the shared vocabulary: the engine reports the registry's answer as text, so a refused login is
 * final and a registry that is down may be back for the next attempt; a network error reaching the engine is retried.
 */
export function pushFailure(err: unknown, tag: string): unknown {
  if (err instanceof PushError) return portError(classifyRegistryMessage(err.message), err.message);
  return classifyNetwork(err, `docker push ${tag}`);
}

const TAIL = 40;

/** Every regular file under the context, relative to it; symlinks are sent as links, never followed out. */
export function listContext(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out;
}

type DockerEvent = { stream?: string; status?: string; error?: string; errorDetail?: { message?: string }; aux?: any; progressDetail?: any; id?: string };

/**
 * Follows a build or push stream to its end. On cancellation the request is aborted (the daemon stops the build when
 * its client goes away) and the stream is not waited for: an aborted response may simply close, which
 * followProgress would report as success.
 */
function follow(docker: Docker, stream: NodeJS.ReadableStream, onEvent: (e: DockerEvent) => void, signal: AbortSignal | undefined, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
      reject(cancellation(what));
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    docker.modem.followProgress(
      stream,
      (err: Error | null) => {
        signal?.removeEventListener('abort', onAbort);
        if (signal?.aborted) reject(cancellation(what));
        else if (err) reject(err);
        else resolve();
      },
      onEvent,
    );
  });
}

/**
 * Calls `report` on a timer while `work` runs: a long step (a slow RUN, a big layer) emits no events for minutes.
 * A failure after cancellation (the aborted request's own error) is reported as the cancellation.
 */
async function ticking<T>(report: () => void, signal: AbortSignal | undefined, what: string, work: () => Promise<T>): Promise<T> {
  report();
  const timer = setInterval(report, tickInterval());
  try {
    return await work();
  } catch (err) {
    if (signal?.aborted) throw cancellation(what);
    throw err;
  } finally {
    clearInterval(timer);
  }
}

export class DockerImageBuilder implements ImageBuilder {
  constructor(
    private readonly docker: Docker,
    private readonly credentials: CredentialStore,
  ) {}

  async build(req: BuildRequest, progress: Progress): Promise<{ imageId: string; steps: number }> {
    const tail: string[] = [];
    let step: string | undefined;
    let steps = 0;
    let imageId: string | undefined;
    let failure: string | undefined;
    const started = Date.now();
    const report = () => {
      const m = step ? /^Step (\d+)\/(\d+)/.exec(step) : null;
      progress({ ...(step ? { step } : {}), ...(m ? { stepIndex: Number(m[1]), stepCount: Number(m[2]) } : {}), ...(tail.length ? { lastLine: tail[tail.length - 1].slice(0, 200) } : {}), elapsedMs: Date.now() - started });
    };
    await ticking(report, req.signal, `docker build of ${req.tag}`, async () => {
      // abortSignal reaches the HTTP request: aborting it makes the daemon stop the build (and its RUN container).
      const stream = await this.docker.buildImage(
        { context: req.contextDir, src: listContext(req.contextDir) },
        {
          t: req.tag,
          dockerfile: req.dockerfile,
          buildargs: req.args,
          labels: req.labels,
          rm: true,
          forcerm: true,
          pull: false,
          abortSignal: req.signal,
        } as Docker.ImageBuildOptions,
      );
      try {
        await follow(
          this.docker,
          stream,
          (e) => {
            for (const line of (e.stream ?? '').split('\n').filter((l) => l.trim())) {
              tail.push(line);
              if (tail.length > TAIL) tail.shift();
              if (/^Step \d+\/\d+ :/.test(line)) {
                step = line;
                steps++;
                report();
              }
            }
            if (e.aux?.ID) imageId = e.aux.ID;
            if (e.error) {
              failure = e.errorDetail?.message ?? e.error;
              tail.push(failure);
            }
          },
          req.signal,
          `docker build of ${req.tag}`,
        );
      } catch (err) {
        if (req.signal?.aborted) throw err;
        failure ??= (err as Error).message;
      }
    });
    if (failure) throw new BuildError(`docker build failed${step ? ` at "${step}"` : ''}: ${failure}`, step, tail);
    if (!imageId) {
      // Older engines do not send aux.ID on the classic builder; the tag is authoritative.
      imageId = (await this.docker.getImage(req.tag).inspect()).Id;
    }
    return { imageId, steps };
  }

  async push(tag: string, registry: RegistryRef, progress: Progress, signal?: AbortSignal): Promise<{ digest: string; size?: number }> {
    const creds = this.credentials.lookup(registry.host, registry.name);
    const authconfig = creds ? { username: creds.username, password: creds.password, serveraddress: registry.host } : undefined;
    let digest: string | undefined;
    let size: number | undefined;
    let failure: string | undefined;
    let status: string | undefined;
    // Per layer: bytes sent so far, its size when known, whether it is done (pushed or already there).
    const layers = new Map<string, { current: number; total?: number; done: boolean }>();
    const started = Date.now();
    const report = () => {
      const all = [...layers.values()];
      const bytes = all.reduce((n, l) => n + (l.done ? (l.total ?? l.current) : l.current), 0);
      const totals = all.map((l) => l.total);
      progress({
        pushing: tag,
        ...(status ? { status } : {}),
        layersDone: all.filter((l) => l.done).length,
        layers: all.length,
        bytes,
        ...(totals.every((t) => t !== undefined) && all.length ? { totalBytes: totals.reduce((a, b) => a! + b!, 0) } : {}),
        elapsedMs: Date.now() - started,
      });
    };
    await ticking(report, signal, `docker push ${tag}`, async () => {
      const stream = (await this.docker.getImage(tag).push({ authconfig, abortSignal: signal } as any)) as unknown as NodeJS.ReadableStream;
      await follow(
        this.docker,
        stream,
        (e) => {
          if (e.aux?.Digest) {
            digest = e.aux.Digest;
            size = e.aux.Size;
          }
          if (e.error) failure = e.errorDetail?.message ?? e.error;
          if (e.status && e.id && /^[0-9a-f]{12,}$/.test(e.id)) {
            const l = layers.get(e.id) ?? { current: 0, done: false };
            if (typeof e.progressDetail?.current === 'number') l.current = e.progressDetail.current;
            if (typeof e.progressDetail?.total === 'number' && e.progressDetail.total > 0) l.total = e.progressDetail.total;
            if (/^(Pushed|Layer already exists|Mounted from)/.test(e.status)) l.done = true;
            layers.set(e.id, l);
          }
          if (e.status) status = e.status;
        },
        signal,
        `docker push ${tag}`,
      );
    });
    if (failure) throw new PushError(`docker push ${tag} failed: ${failure}`);
    if (!digest) throw new PushError(`docker push ${tag} reported no manifest digest`);
    return { digest, size };
  }
}
