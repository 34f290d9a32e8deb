/** Test helpers for child processes: fake tools written as shell scripts, and whether a pid still runs. */
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A pid runs unless /proc has no entry for it or it is a zombie (exited, not yet reaped by its new parent). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

export const scratchDir = (prefix: string): string => mkdtempSync(join(tmpdir(), `slipway-${prefix}-`));

/** Writes an executable /bin/sh script and returns its path. */
export function script(dir: string, name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

/**
 * A script body that starts `sleep 1000` children (one directly, one through a nested shell, so a grandchild too),
 * records every pid (its own first) in `pidFile`, then waits for them.
 */
export const spawnsSleepers = (pidFile: string, prelude = ''): string => `${prelude}
echo $$ >> '${pidFile}'
sleep 1000 </dev/null >/dev/null 2>&1 &
echo $! >> '${pidFile}'
sh -c 'sleep 1000 & echo $! >> "$0"; wait' '${pidFile}' </dev/null >/dev/null 2>&1 &
echo $! >> '${pidFile}'
echo 'children started' >&2
wait`;

/** The pids a `spawnsSleepers` script recorded, once it has recorded all four. */
export function recordedPids(pidFile: string): number[] | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pids = readFileSync(pidFile, 'utf8').split('\n').filter(Boolean).map(Number);
  return pids.length >= 4 ? pids : undefined;
}

export async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
