/** Reviews → who approves: each user's latest review counts (a later "changes requested" withdraws an approval). */
import type { Review } from '../ports';

export function approvers(reviews: Review[], author?: string): string[] {
  const latest = new Map<string, Review>();
  for (const r of reviews) if (r.state !== 'commented' && r.state !== 'other') latest.set(r.user, r);
  return [...latest.values()].filter((r) => r.state === 'approved' && r.user !== author).map((r) => r.user);
}
