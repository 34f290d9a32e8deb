/**
 * Runs an external tool with an argument array (never a shell), bounded by a timeout and the activity's
 * cancellation, heartbeating while it runs. Shared by the Trivy and Helm adapters.
 *
 * The tool gets its own process group, and a cancelled or timed-out run signals the whole group (first the
 * cancel signal, SIGKILL after a grace period): a tool's own children (helm's plugins, a shell's `sleep`) must not
 * outlive the activity that started them.
 */
import { Context } from '@temporalio/activity';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, delimiter, isAbsolute, join } from 'node:path';

export interface ToolRun {
  stdout: string;
  stderr: string;
  /** The exit code; null when the tool was ended by a signal (then `signal` names it) or could not start. */
  code: number | null;
  signal?: NodeJS.Signals;
  timedOut: boolean;
  cancelled: boolean;
}

/** What a running tool reports on every tick (the activity's heartbeat details). */
export interface ToolProgress {
  tool: string;
  elapsedMs: number;
  /** The last non-empty line the tool wrote (stderr preferred: that is where tools report progress). */
  lastLine?: string;
}

export interface ToolOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
  /** Cancels the run; defaults to the current activity's cancellation signal. */
  signal?: AbortSignal;
  /**
   * Called on every tick with the run's progress, after runTool has heartbeaten the current activity itself;
   * a caller adds its own details here (the last heartbeat of a tick wins).
   */
  onTick?: (progress: ToolProgress) => void;
  /** Defaults to a third of the activity's heartbeat timeout (at most 5 s). */
  tickMs?: number;
  /** Signal sent to the process group on cancellation or timeout: SIGTERM lets a tool such as Helm record its own failure. */
  cancelSignal?: NodeJS.Signals;
  /** How long the group has to exit after `cancelSignal` before it gets SIGKILL. */
  killGraceMs?: number;
  /** Output kept per stream; the rest is dropped. */
  maxBufferBytes?: number;
}

const activityContext = (): Context | undefined => {
  try {
    return Context.current();
  } catch {
    return undefined; // outside an activity (unit tests, the CLI)
  }
};

/** Collects a stream's output up to a bound and remembers its last non-empty line. */
class Capture {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private partial = '';
  lastLine: string | undefined;
  constructor(private readonly max: number) {}
  push(chunk: Buffer): void {
    if (this.bytes < this.max) {
      const kept = chunk.subarray(0, this.max - this.bytes);
      this.chunks.push(kept);
      this.bytes += kept.length;
    }
    // Only the tail of a chunk can hold the last line; a huge single line (a JSON report) is cut short.
    const lines = (this.partial + chunk.subarray(-4096).toString('utf8')).split(/\r?\n|\r/);
    this.partial = (lines.pop() ?? '').slice(-512);
    const last = lines.reverse().find((l) => l.trim());
    if (last) this.lastLine = last.trim().slice(0, 200);
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
  currentLine(): string | undefined {
    return this.partial.trim() ? this.partial.trim().slice(0, 200) : this.lastLine;
  }
}

/** How often a long step reports progress: a third of the activity's heartbeat timeout, at most every 5 s. */
export function tickInterval(): number {
  const hbTimeout = activityContext()?.info.heartbeatTimeoutMs;
  return hbTimeout ? Math.min(5_000, Math.max(100, Math.floor(hbTimeout / 3))) : 5_000;
}

/**
 * Process groups still running. A tool in a group of its own no longer gets the terminal's Ctrl-C with the worker,
 * so when the worker process exits, whatever is left is ended with it (a SIGKILLed worker cannot do this).
 */
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function track(pid: number): void {
  liveGroups.add(pid);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const g of liveGroups) {
      try {
        process.kill(-g, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

/** util-linux's setpriv (Debian's essential util-linux package); without it tools run as before. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

export function runTool(binary: string, args: string[], opts: ToolOptions): Promise<ToolRun> {
  const ctx = activityContext();
  const abort = opts.signal ?? ctx?.cancellationSignal;
  const tickMs = opts.tickMs ?? tickInterval();
  const grace = opts.killGraceMs ?? 5_000;
  const started = Date.now();
  const tool = basename(binary);

  return new Promise((resolve) => {
    const out = new Capture(opts.maxBufferBytes ?? 256 * 1024 * 1024);
    const err = new Capture(opts.maxBufferBytes ?? 256 * 1024 * 1024);
    let cancelled = false;
    let timedOut = false;
    let settled = false;
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let startError: Error | undefined;
    const timers: NodeJS.Timeout[] = [];

    // detached: the tool leads a new process group, so -pid reaches it and everything it started. That group
    // outlives a worker killed with SIGKILL (no exit hook runs), so setpriv also asks the kernel to SIGKILL the tool
    // when the worker dies (PR_SET_PDEATHSIG) — else a helm upgrade would go on with nobody to report it.
    const [file, argv] = SETPRIV && isAbsolute(binary) && existsSync(binary) ? [SETPRIV, ['--pdeathsig', 'KILL', '--', binary, ...args]] : [binary, args];
    const child = spawn(file, argv, { env: opts.env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid) track(child.pid);
    const killGroup = (sig: NodeJS.Signals) => {
      if (!child.pid) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        /* ESRCH: the group is gone */
      }
    };
    const stop = (sig: NodeJS.Signals) => {
      killGroup(sig);
      if (sig !== 'SIGKILL') timers.push(setTimeout(() => killGroup('SIGKILL'), grace));
    };

    const progress = (): ToolProgress => {
      const lastLine = err.currentLine() ?? out.currentLine();
      return { tool, elapsedMs: Date.now() - started, ...(lastLine ? { lastLine } : {}) };
    };
    const tick = () => {
      const p = progress();
      try {
        ctx?.heartbeat(p);
      } catch {
        /* the activity has completed */
      }
      opts.onTick?.(p);
    };

    const finish = () => {
      if (settled) return;
      settled = true;
      if (child.pid) liveGroups.delete(child.pid);
      clearInterval(ticker);
      timers.forEach(clearTimeout);
      abort?.removeEventListener('abort', onAbort);
      const stderr = err.text() + (startError ? `${startError.message}\n` : '');
      resolve({ stdout: out.text(), stderr, code: exited?.code ?? null, ...(exited?.signal ? { signal: exited.signal } : {}), timedOut, cancelled });
    };

    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => {
      startError = e;
      if (!child.pid) finish(); // it never started: no exit or close will follow
    });
    child.on('exit', (code, sig) => {
      exited = { code, signal: sig };
      // Whatever the tool left running in its group is an orphan now.
      killGroup('SIGKILL');
      // A grandchild that left the group may still hold the pipes; do not wait for it forever.
      timers.push(setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish();
      }, grace));
    });
    child.on('close', finish);

    const onAbort = () => {
      if (exited || cancelled) return;
      cancelled = true;
      stop(opts.cancelSignal ?? 'SIGTERM');
    };
    if (abort?.aborted) onAbort();
    else abort?.addEventListener('abort', onAbort, { once: true });
    timers.push(
      setTimeout(() => {
        if (exited || cancelled) return;
        timedOut = true;
        stop(opts.cancelSignal ?? 'SIGTERM');
      }, opts.timeoutMs),
    );
    const ticker = setInterval(tick, tickMs);
    tick();
  });
}

/** What a cancelled run throws: the activity's own cancellation (so Temporal records it as such), else an Error. */
export function cancellation(what: string): Error {
  const reason: unknown = activityContext()?.cancellationSignal.reason;
  return reason instanceof Error ? reason : new Error(`${what} was cancelled`);
}

/** The last lines of a tool's stderr, which is where its error message is. */
export const tail = (text: string, lines = 5): string => text.trim().split('\n').slice(-lines).join('\n');

/** A tool's binary: an explicit setting, else PATH, else slipway's bin cache (where scripts/install.sh puts it). */
export function toolBinary(name: string, explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return explicit;
  const onPath = (env.PATH ?? '').split(delimiter).map((d) => join(d, name)).find((p) => existsSync(p));
  return onPath ?? join(env.SLIPWAY_HOME ?? join(homedir(), '.cache', 'slipway'), 'bin', name);
}
