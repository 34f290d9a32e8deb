/**
 * Runs an external tool with an argument array (never a shell), bounded by a timeout and the activity's
 * cancellation, heartbeating while it runs. Shared by the Trivy and Helm adapters.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface ToolRun {
  stdout: string;
  stderr: string;
  code: number | null;
  timedOut: boolean;
  cancelled: boolean;
}

export interface ToolOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Called every `tickMs` while the tool runs (heartbeats). */
  onTick?: () => void;
  tickMs?: number;
  /** Signal sent on cancellation: SIGTERM lets a tool such as Helm record its own failure before it exits. */
  cancelSignal?: NodeJS.Signals;
}

export function runTool(binary: string, args: string[], opts: ToolOptions): Promise<ToolRun> {
  return new Promise((resolve) => {
    let cancelled = false;
    const child = execFile(
      binary,
      args,
      { env: opts.env ?? process.env, maxBuffer: 256 * 1024 * 1024, timeout: opts.timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        clearInterval(tick);
        opts.signal?.removeEventListener('abort', onAbort);
        const e = err as (Error & { code?: number | string; killed?: boolean }) | null;
        resolve({ stdout, stderr, code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, timedOut: Boolean(e?.killed) && !cancelled, cancelled });
      },
    );
    child.on('error', () => undefined);
    const onAbort = () => {
      cancelled = true;
      child.kill(opts.cancelSignal ?? 'SIGKILL');
    };
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    const tick = setInterval(() => opts.onTick?.(), opts.tickMs ?? 5_000);
  });
}

/** The last lines of a tool's stderr, which is where its error message is. */
export const tail = (text: string, lines = 5): string => text.trim().split('\n').slice(-lines).join('\n');

/** A tool's binary: an explicit setting, else PATH, else slipway's bin cache (where scripts/install.sh puts it). */
export function toolBinary(name: string, explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return explicit;
  const onPath = (env.PATH ?? '').split(delimiter).map((d) => join(d, name)).find((p) => existsSync(p));
  return onPath ?? join(env.SLIPWAY_HOME ?? join(homedir(), '.cache', 'slipway'), 'bin', name);
}
