/** Human-readable status for the terminal. */
import type { CanaryInterval, DecisionIdentity, ReleaseStatus } from '../model/types';

export function renderStatus(s: ReleaseStatus): string {
  const lines = [`${s.service} ${s.version} — ${s.phase}${s.digest ? ` — ${s.digest}` : ''}`, `requested by ${s.requester}${verifiedBy(s.requesterIdentity)} at ${s.startedAt}`];
  if (s.plan) lines.push(`plan ${s.plan.digest} from ${s.plan.source} (trusted issuers: ${s.plan.trustedIssuers.map((i) => `${i.name}${i.selfAsserted ? ' [self-asserted]' : ''}`).join(', ') || 'none'})`);
  for (const st of s.stages) {
    const took = st.startedAt && st.endedAt ? ` (${((Date.parse(st.endedAt) - Date.parse(st.startedAt)) / 1000).toFixed(1)}s)` : '';
    const summary = typeof st.result?.summary === 'string' ? ` — ${st.result.summary}` : '';
    lines.push(`  ${st.state.padEnd(9)} ${st.id}${took}${summary}${st.error ? ` — ${st.error.split('\n')[0]}` : ''}`);
  }
  if (s.awaitingApproval) {
    const a = s.awaitingApproval;
    lines.push(`awaiting approval for ${a.environment}: ${a.received}/${a.required} from ${a.approvers.join(', ')} until ${a.deadline}`);
  }
  for (const a of s.approvals) lines.push(`  ${a.decision} by ${a.approver}${verifiedBy(a.identity)} at ${a.at}${a.comment ? `: ${a.comment}` : ''}`);
  for (const [env, ref] of Object.entries(s.references)) lines.push(`  ${env}: ${ref}`);
  for (const [env, d] of Object.entries(s.deployments ?? {})) {
    lines.push(`  ${env}: helm ${d.release} in ${d.context}/${d.namespace} revision ${d.revision ?? '?'} (was ${d.previousRevision || 'not installed'}) — ${d.state}`);
  }
  for (const [env, g] of Object.entries(s.gitops ?? {})) lines.push(`  ${env}: gitops ${g.repository} (${g.branch}, ${g.merge}) — ${g.state}${g.pullRequest ? ` — pull request ${g.pullRequest.url} ${g.pullRequest.state}${g.pullRequest.mergedBy ? ` by ${g.pullRequest.mergedBy}` : ''}` : ''}${g.commit ? ` — commit ${g.commit.slice(0, 12)}` : ''}`);
  if (s.canary) {
    const c = s.canary;
    lines.push(`canary in ${c.environment}: ${c.state} at step ${c.step}, weight ${c.weight} %${c.decision ? ` — ${c.decision.action} by ${c.decision.by}${c.decision.reason ? `: ${c.decision.reason}` : ''}` : ''}`);
    for (const i of c.intervals) lines.push(`  ${renderCanaryInterval(i)}`);
  }
  if (s.error) lines.push(`error: ${s.error}`);
  return lines.join('\n');
}

/** One judged interval: weight, score and verdict, then each metric's classification (deviation = effect size). */
export function renderCanaryInterval(i: CanaryInterval): string {
  const metrics = i.metrics.map((m) => `${m.name} ${m.classification}${Number.isFinite(m.deviation) && m.deviation !== 1 ? ` ×${m.deviation.toFixed(2)}` : ''}`).join(', ');
  return `interval at ${i.weight} %: score ${i.score.toFixed(0)} ${i.result}${metrics ? ` (${metrics})` : ''}`;
}

/** How an identity was established, as the status says: a signed edge, or self-asserted (local stack only). */
function verifiedBy(id: DecisionIdentity | undefined): string {
  if (!id) return ' (unverified: a run from before signed decisions)';
  return id.selfAsserted ? ` (self-asserted, ${id.issuer} key)` : ` (verified by ${id.issuer}, ${id.method})`;
}
