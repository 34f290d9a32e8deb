/** Human-readable status for the terminal. */
import type { ReleaseStatus } from '../workflows/types';

export function renderStatus(s: ReleaseStatus): string {
  const lines = [`${s.service} ${s.version} — ${s.phase}${s.digest ? ` — ${s.digest}` : ''}`, `requested by ${s.requester} at ${s.startedAt}`];
  for (const st of s.stages) {
    const took = st.startedAt && st.endedAt ? ` (${((Date.parse(st.endedAt) - Date.parse(st.startedAt)) / 1000).toFixed(1)}s)` : '';
    const summary = typeof st.result?.summary === 'string' ? ` — ${st.result.summary}` : '';
    lines.push(`  ${st.state.padEnd(9)} ${st.id}${took}${summary}${st.error ? ` — ${st.error.split('\n')[0]}` : ''}`);
  }
  if (s.awaitingApproval) {
    const a = s.awaitingApproval;
    lines.push(`awaiting approval for ${a.environment}: ${a.received}/${a.required} from ${a.approvers.join(', ')} until ${a.deadline}`);
  }
  for (const a of s.approvals) lines.push(`  ${a.decision} by ${a.approver} at ${a.at}${a.comment ? `: ${a.comment}` : ''}`);
  for (const [env, ref] of Object.entries(s.references)) lines.push(`  ${env}: ${ref}`);
  for (const [env, d] of Object.entries(s.deployments ?? {})) {
    lines.push(`  ${env}: helm ${d.release} in ${d.context}/${d.namespace} revision ${d.revision ?? '?'} (was ${d.previousRevision || 'not installed'}) — ${d.state}`);
  }
  if (s.error) lines.push(`error: ${s.error}`);
  return lines.join('\n');
}
