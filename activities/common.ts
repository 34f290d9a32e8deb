/** What every activity shares: input checks at the boundary, heartbeats, cancellation, workspace paths. */
import { Context } from '@temporalio/activity';
import { realpathSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import type { ZodType } from 'zod';
import { formatIssues } from '../model/config';
import { ErrorTypes } from '../model/errors';
import { portError } from './errors';

export function check<T>(schema: ZodType<T>, input: unknown, name: string): T {
  const r = schema.safeParse(input);
  if (!r.success) throw portError(ErrorTypes.InvalidInput, `${name}: invalid input\n${formatIssues(r.error, 'input')}`);
  return r.data;
}

/** Heartbeats carry the latest progress; a retried attempt can read what the previous one reached. */
export function heartbeat(details: Record<string, unknown>): void {
  try {
    Context.current().heartbeat(details);
  } catch {
    /* outside an activity (unit tests) */
  }
}

export function signal(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}

/** Resolves a repo-relative path inside the workspace, refusing anything (symlinks included) that escapes it. */
export function resolveInside(workspace: string, rel: string, what: string): string {
  const root = realpathSync(workspace);
  const full = join(root, rel);
  let real: string;
  try {
    real = realpathSync(full);
  } catch {
    throw portError(ErrorTypes.InvalidInput, `${what} "${rel}" does not exist in the workspace ${root}`);
  }
  const r = relative(root, real);
  if (r.startsWith('..') || isAbsolute(r)) {
    throw portError(ErrorTypes.InvalidInput, `${what} "${rel}" resolves outside the workspace`);
  }
  return real;
}


/**
 * Heartbeats `snapshot()` on a timer (default: exec.ts's tickInterval, a third of the heartbeat timeout) while a
 * long step runs, but only when it changed since the last beat: a transfer that moves bytes is never taken for
 * dead, while one that stalls stops beating and is still caught by the heartbeat timeout. Returns `stop`, which
 * sends the final state.
 */
export function heartbeatWhileProgressing(snapshot: () => Record<string, unknown>, beat: (d: Record<string, unknown>) => void, intervalMs: number): () => void {
  let last = '';
  const tick = () => {
    const d = snapshot();
    const key = JSON.stringify(d);
    if (key === last) return;
    last = key;
    beat(d);
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref?.();
  return () => {
    clearInterval(timer);
    tick();
  };
}
