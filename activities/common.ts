/** What every activity shares: input checks at the boundary, heartbeats, cancellation, workspace paths. */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { realpathSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import type { ZodType } from 'zod';
import { formatIssues } from '../workflows/config';
import { ErrorTypes } from '../workflows/errors';

export function check<T>(schema: ZodType<T>, input: unknown, name: string): T {
  const r = schema.safeParse(input);
  if (!r.success) throw ApplicationFailure.nonRetryable(`${name}: invalid input\n${formatIssues(r.error, 'input')}`, ErrorTypes.InvalidInput);
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
    throw ApplicationFailure.nonRetryable(`${what} "${rel}" does not exist in the workspace ${root}`, ErrorTypes.InvalidInput);
  }
  const r = relative(root, real);
  if (r.startsWith('..') || isAbsolute(r)) {
    throw ApplicationFailure.nonRetryable(`${what} "${rel}" resolves outside the workspace`, ErrorTypes.InvalidInput);
  }
  return real;
}

