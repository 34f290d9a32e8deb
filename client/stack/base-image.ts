/** A tiny base image for builds that need RUN steps on hosts that cannot pull: busybox-static, `docker import`ed. */
import Docker from 'dockerode';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, copyFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Readable } from 'node:stream';
import { join } from 'node:path';

export const BASE_IMAGE = 'slipway/busybox:local';

export async function ensureBaseImage(docker: Docker): Promise<void> {
  if (await docker.getImage(BASE_IMAGE).inspect().then(() => true, () => false)) return;
  const busybox = ['/bin/busybox', '/usr/bin/busybox'].find(existsSync);
  if (!busybox) throw new Error('busybox is missing: apt-get install busybox-static (scripts/install.sh does)');
  const root = mkdtempSync(join(tmpdir(), 'slipway-base-'));
  mkdirSync(join(root, 'bin'));
  copyFileSync(busybox, join(root, 'bin', 'busybox'));
  for (const applet of ['sh', 'sleep', 'echo', 'cat', 'ls', 'head', 'dd', 'true']) symlinkSync('busybox', join(root, 'bin', applet));
  const tar = execFileSync('tar', ['-C', root, '-c', '.'], { maxBuffer: 64 * 1024 * 1024 });
  const [repo, tag] = BASE_IMAGE.split(':');
  const stream = (await docker.importImage(Readable.from([tar]), { repo, tag, changes: ['ENV PATH=/bin'] } as any)) as unknown as NodeJS.ReadableStream;
  await new Promise((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve(undefined))));
}
