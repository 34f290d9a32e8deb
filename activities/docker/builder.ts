/** The Docker Engine adapter of the ImageBuilder port (dockerode). */
import type Docker from 'dockerode';
import { readdirSync, lstatSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { RegistryRef } from '../../workflows/types';
import type { BuildRequest, ImageBuilder, Progress } from '../ports';
import type { CredentialStore } from '../registry/credentials';

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

function follow(docker: Docker, stream: NodeJS.ReadableStream, onEvent: (e: DockerEvent) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()), onEvent);
  });
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
      await follow(this.docker, stream, (e) => {
        for (const line of (e.stream ?? '').split('\n').filter((l) => l.trim())) {
          tail.push(line);
          if (tail.length > TAIL) tail.shift();
          if (/^Step \d+\/\d+ :/.test(line)) {
            step = line;
            steps++;
            progress({ step: line });
          }
        }
        if (e.aux?.ID) imageId = e.aux.ID;
        if (e.error) {
          failure = e.errorDetail?.message ?? e.error;
          tail.push(failure);
        }
      });
    } catch (err) {
      failure ??= (err as Error).message;
    }
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
    const stream = (await this.docker.getImage(tag).push({ authconfig, abortSignal: signal } as any)) as unknown as NodeJS.ReadableStream;
    let digest: string | undefined;
    let size: number | undefined;
    let failure: string | undefined;
    let last = 0;
    await follow(this.docker, stream, (e) => {
      if (e.aux?.Digest) {
        digest = e.aux.Digest;
        size = e.aux.Size;
      }
      if (e.error) failure = e.errorDetail?.message ?? e.error;
      if (Date.now() - last > 1000 && e.status) {
        last = Date.now();
        progress({ status: e.status, layer: e.id });
      }
    });
    if (failure) throw new PushError(`docker push ${tag} failed: ${failure}`);
    if (!digest) throw new PushError(`docker push ${tag} reported no manifest digest`);
    return { digest, size };
  }
}
