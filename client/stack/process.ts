/** Helpers for the embedded local stack: state paths, background daemons with pid files, readiness waits. */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { connect } from 'node:net';

export const slipwayHome = (env: NodeJS.ProcessEnv = process.env): string => env.SLIPWAY_HOME ?? join(homedir(), '.cache', 'slipway');

export function stateDir(...parts: string[]): string {
  const d = join(slipwayHome(), ...parts);
  mkdirSync(d, { recursive: true });
  return d;
}

/** Finds an executable on PATH, then in slipway's own bin cache (where the install script puts go-installed tools). */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), join(slipwayHome(), 'bin'), '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    const p = join(d, name);
    if (d && existsSync(p)) return p;
  }
  return undefined;
}

export function portOpen(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, logFile?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  const tail = logFile && existsSync(logFile) ? `\n--- last lines of ${logFile} ---\n${readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n')}` : '';
  throw new Error(`${what} did not become ready within ${Math.round(timeoutMs / 1000)}s${tail}`);
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts a daemon detached from this process (it outlives the CLI), logging to a file and recording its pid. */
export function startDaemon(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): { pid: number; log: string } {
  const run = stateDir('run');
  const log = join(run, `${name}.log`);
  const out = openSync(log, 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', out, out], env });
  child.unref();
  writeFileSync(join(run, `${name}.pid`), String(child.pid));
  return { pid: child.pid!, log };
}

export function daemonPid(name: string): number | undefined {
  const f = join(slipwayHome(), 'run', `${name}.pid`);
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, 'utf8'));
  return pid && pidAlive(pid) ? pid : undefined;
}

export async function stopDaemon(name: string): Promise<boolean> {
  const pid = daemonPid(name);
  rmSync(join(slipwayHome(), 'run', `${name}.pid`), { force: true });
  if (!pid) return false;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 40 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 250));
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  return true;
}
