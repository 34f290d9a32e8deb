/** Durations as slipway.yaml writes them ("90s", "30m") and their schema. */
import { z } from 'zod';

/** "90s", "30m", "72h", "2d", "500ms" → milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

export const durationSchema = z
  .string()
  .refine((d) => parseDuration(d) !== undefined, 'must be a duration such as 90s, 30m, 72h or 2d')
  .refine((d) => (parseDuration(d) ?? 0) > 0, 'must be longer than zero')
  .refine((d) => (parseDuration(d) ?? 0) <= 30 * 86_400_000, 'must be at most 30d');
