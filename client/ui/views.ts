/**
 * Server-rendered pages: plain HTML, usable without JavaScript (JS only adds live updates). Memos, search
 * attributes and status come from whoever started or runs a workflow: EVERY interpolated value — numbers included,
 * since a forged memo or status can put a string where a number belongs — goes through `esc`.
 */
import type { ReleaseSummary } from '../client';
import type { ReleaseStatus } from '../../model/types';
import { ASSETS } from './assets';

export const esc = (v: unknown): string =>
  String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** A number with `digits` decimals, or a dash for anything that is not a finite number. */
const fixed = (v: unknown, digits: number): string => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '—');
const list = <T>(v: T[] | undefined | null): T[] => (Array.isArray(v) ? v : []);

const shortDigest = (d?: unknown) => (typeof d === 'string' && d ? `${d.slice(0, 19)}…` : '—');
const when = (iso?: unknown) => (typeof iso === 'string' && iso ? `<time datetime="${esc(iso)}">${esc(iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'))}</time>` : '—');

export function layout(title: string, body: string, who?: { user: string; csrf: string; localMode: boolean }): string {
  const signOut = who?.localMode
    ? `<form method="post" action="/logout"><input type="hidden" name="_csrf" value="${esc(who.csrf)}"><button type="submit">Sign out</button></form>`
    : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)} · Slipway</title><link rel="stylesheet" href="${esc(ASSETS.css.url)}"></head><body>
<header><strong><a href="/">Slipway approvals</a></strong><span class="who">${who ? `Signed in as <b data-testid="identity">${esc(who.user)}</b> ${signOut}` : ''}</span></header>
<main>${body}</main></body></html>`;
}

export function loginPage(users: string[], csrf: string, error?: string): string {
  const buttons = users.map((u) => `<li><button type="submit" name="user" value="${esc(u)}">${esc(u)}</button></li>`).join('');
  return layout(
    'Sign in',
    `<h1>Sign in</h1><p>Local mode: choose who you are. (Behind an authenticating proxy, identity comes from its headers instead.)</p>
${error ? `<p class="notice err" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/login"><input type="hidden" name="_csrf" value="${esc(csrf)}"><ul>${buttons}</ul></form>`,
  );
}

export function inboxPage(rows: ReleaseSummary[], filter: { service?: string; env?: string }, options: { services: string[]; envs: string[] }, who: Parameters<typeof layout>[2]): string {
  const select = (name: string, label: string, values: string[], current?: string) =>
    `<label>${esc(label)}<br><select name="${esc(name)}"><option value="">all</option>${values.map((v) => `<option${v === current ? ' selected' : ''}>${esc(v)}</option>`).join('')}</select></label>`;
  const body = rows.length
    ? `<table><thead><tr><th>Release</th><th>Environment</th><th>Digest</th><th>Requester</th><th>Deadline</th><th>Approvals</th><th>What QA showed</th></tr></thead><tbody>
${rows
  .map((r) => {
    const i = r.inbox!;
    const qa = Object.entries(i.references)
      .map(([env, ref]) => `${esc(env)}: <code>${esc(ref)}</code>`)
      .join('<br>');
    const passed = i.stages.map((s) => esc(s.id)).join(', ');
    return `<tr data-release="${esc(r.workflowId)}"><td><a href="/releases/${esc(encodeURIComponent(r.workflowId))}">${esc(r.service)} ${esc(r.version)}</a></td>
<td>${esc(i.environment)}</td><td><code title="${esc(i.digest)}">${esc(shortDigest(i.digest))}</code></td><td>${esc(i.requester)}</td><td>${when(i.deadline)}</td>
<td>${esc(i.received)}/${esc(i.required)}</td><td>${qa || '—'}<br><small>passed: ${passed || '—'}</small></td></tr>`;
  })
  .join('\n')}</tbody></table>`
    : '<p>Nothing is waiting for approval.</p>';
  return layout(
    'Inbox',
    `<h1>Waiting for approval <small>(${esc(rows.length)})</small></h1>
<form class="filters" method="get" action="/">${select('service', 'Service', options.services, filter.service)}${select('env', 'Environment', options.envs, filter.env)}<button type="submit">Filter</button></form>
${body}`,
    who,
  );
}

/** The part of the release page that refreshes live. */
export function statusFragment(s: ReleaseStatus): string {
  const stages = list(s.stages)
    .map((st) => {
      const took = st.startedAt && st.endedAt ? `${fixed((Date.parse(st.endedAt) - Date.parse(st.startedAt)) / 1000, 1)} s` : '';
      const result = st.result ? Object.entries(st.result).filter(([, v]) => typeof v !== 'object').map(([k, v]) => `${esc(k)}: <code>${esc(v)}</code>`).join('<br>') : '';
      return `<tr><td>${esc(st.id)}</td><td class="state-${esc(st.state)}" data-testid="stage-${esc(st.id)}">${esc(st.state)}</td><td>${when(st.startedAt)}</td><td>${esc(took)}</td><td>${result}${st.error ? `<br><span class="state-failed">${esc(st.error)}</span>` : ''}</td></tr>`;
    })
    .join('');
  const approvals = list(s.approvals).length
    ? `<ul>${list(s.approvals).map((a) => `<li data-testid="decision"><b>${esc(a.decision)}</b> for ${esc(a.environment)} by <b>${esc(a.approver)}</b> at ${when(a.at)}${a.comment ? `: “${esc(a.comment)}”` : ''}</li>`).join('')}</ul>`
    : '<p>No decisions yet.</p>';
  const waiting = s.awaitingApproval
    ? `<p class="notice" data-testid="awaiting">Awaiting approval for <b>${esc(s.awaitingApproval.environment)}</b>: ${esc(s.awaitingApproval.received)}/${esc(s.awaitingApproval.required)} from ${esc(list(s.awaitingApproval.approvers).join(', '))}, until ${when(s.awaitingApproval.deadline)}.</p>`
    : '';
  return `<p>Phase: <b data-testid="phase">${esc(s.phase)}</b> · digest <code>${esc(s.digest ?? '—')}</code> · requested by ${esc(s.requester)} at ${when(s.startedAt)}</p>
${waiting}${s.error ? `<p class="notice err">${esc(s.error)}</p>` : ''}
<h2>Stages</h2><table><thead><tr><th>Stage</th><th>State</th><th>Started</th><th>Took</th><th>Result</th></tr></thead><tbody>${stages}</tbody></table>
<h2>Decisions</h2>${approvals}
<h2>Images</h2><ul>${Object.entries(s.references ?? {}).map(([env, ref]) => `<li>${esc(env)}: <code>${esc(ref)}</code></li>`).join('') || '<li>—</li>'}</ul>
${deploymentsFragment(s)}${canaryFragment(s)}`;
}

function deploymentsFragment(s: ReleaseStatus): string {
  const rows = Object.entries(s.deployments ?? {});
  if (!rows.length) return '';
  return `<h2>Deployments</h2><table><thead><tr><th>Environment</th><th>Where</th><th>Helm revision</th><th>Replaced</th><th>State</th></tr></thead><tbody>${rows
    .map(([env, d]) => `<tr data-testid="deployment-${esc(env)}"><td>${esc(env)}</td><td><code>${esc(d.context)}/${esc(d.namespace)}</code></td><td>${esc(d.revision ?? '—')}</td><td>${esc(d.previousRevision || 'not installed')}</td><td>${esc(d.state)}</td></tr>`)
    .join('')}</tbody></table>`;
}

/** Every judged interval: weight, score, verdict and each metric's classification. */
function canaryFragment(s: ReleaseStatus): string {
  const c = s.canary;
  if (!c) return '';
  const rows = list(c.intervals)
    .map((i) => `<tr><td>${when(i.at)}</td><td>${esc(i.weight)} %</td><td>${esc(fixed(i.score, 1))}</td><td class="state-${i.result === 'Pass' ? 'succeeded' : i.result === 'Fail' ? 'failed' : 'waiting'}">${esc(i.result)}</td><td>${list(i.metrics).map((m) => `${esc(m.name)}: ${esc(m.classification)}`).join(', ')}</td></tr>`)
    .join('');
  return `<h2>Canary in ${esc(c.environment)}</h2><p data-testid="canary-state">${esc(c.state)} · step ${esc(Number(c.step) + 1)} · weight ${esc(c.weight)} %${c.decision ? ` · ${esc(c.decision.action)} by ${esc(c.decision.by)}` : ''}</p>
<table><thead><tr><th>Judged</th><th>Weight</th><th>Score</th><th>Result</th><th>Metrics</th></tr></thead><tbody>${rows || '<tr><td colspan="5">no interval judged yet</td></tr>'}</tbody></table>`;
}

export function releasePage(id: string, s: ReleaseStatus, opts: { temporalWeb?: string; csrf: string; message?: { ok: boolean; text: string } }, who: Parameters<typeof layout>[2]): string {
  const decide = s.awaitingApproval
    ? `<section id="decide"><h2>Decide</h2>
<form class="decide" method="post" action="/releases/${esc(encodeURIComponent(id))}/decide" data-live>
<input type="hidden" name="_csrf" value="${esc(opts.csrf)}"><input type="hidden" name="digest" value="${esc(s.digest)}"><input type="hidden" name="environment" value="${esc(s.awaitingApproval.environment)}">
<label>Comment<br><textarea name="comment" maxlength="2000"></textarea></label>
<button type="submit" name="decision" value="approve">Approve</button><button type="submit" name="decision" value="reject">Reject</button>
</form></section>`
    : '';
  const message = `<div id="message" role="status" aria-live="polite">${opts.message ? `<p class="notice ${opts.message.ok ? 'ok' : 'err'}" data-testid="message">${esc(opts.message.text)}</p>` : ''}</div>`;
  return layout(
    `${s.service} ${s.version}`,
    `<h1>${esc(s.service)} ${esc(s.version)}</h1>
<p><a href="/">← Inbox</a>${opts.temporalWeb && /^https?:\/\//.test(opts.temporalWeb) ? ` · <a href="${esc(opts.temporalWeb)}" data-testid="temporal-web">History in Temporal Web</a>` : ''}</p>
${message}
<section id="status" aria-live="polite">${statusFragment(s)}</section>
${decide}
<script src="${esc(ASSETS.releaseJs.url)}" defer></script>`,
    who,
  );
}
