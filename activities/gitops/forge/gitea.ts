/**
 * Gitea pull requests (API v1): list/create/get/merge pulls and list reviews. Tested against a real Gitea
 * (test/integration/forge-gitea.test.ts). Webhooks: X-Gitea-Signature (HMAC-SHA256 of the body, hex).
 */
import { gitopsError } from '../errors';
import type { Forge, OpenPullRequest, PullRequest, PullRequestStatus, Review, WebhookEvent } from '../ports';
import { ForgeHttp } from './http';
import { approvers } from './reviews';
import { header, hmacSha256Hex, parseJson, requireSignature } from './webhook';

export interface GiteaForgeOptions {
  /** http://host:port/api/v1 */
  apiUrl: string;
  owner: string;
  repo: string;
  token: string;
  repository: string;
}

export class GiteaForge implements Forge {
  private readonly http: ForgeHttp;
  private readonly base: string;

  constructor(private readonly opts: GiteaForgeOptions) {
    this.http = new ForgeHttp({ baseUrl: opts.apiUrl.replace(/\/+$/, ''), repository: opts.repository, headers: { authorization: `token ${opts.token}` } });
    this.base = `/repos/${encodeURIComponent(opts.owner)}/${encodeURIComponent(opts.repo)}`;
  }

  async openPullRequest(req: OpenPullRequest): Promise<PullRequest> {
    const open = (await this.list('open')).find((p) => p.head.branch === req.head && p.base === req.base);
    if (open) return open;
    const created = await this.http.request('POST', `${this.base}/pulls`, { body: { title: req.title, head: req.head, base: req.base, body: req.body }, accept: [409, 422] });
    if (created.status === 201) return toPullRequest(created.body);
    // 409: "pull request already exists for these targets" — an earlier attempt opened it.
    const raced = (await this.list('open')).find((p) => p.head.branch === req.head && p.base === req.base);
    if (raced) return raced;
    throw gitopsError('rejected', this.opts.repository, `POST ${this.base}/pulls: HTTP ${created.status} (${created.body?.message ?? ''})`, { status: created.status });
  }

  async findPullRequest(head: string, base: string): Promise<PullRequest | undefined> {
    return (await this.list('all')).find((p) => p.head.branch === head && p.base === base);
  }

  async getPullRequest(number: number): Promise<PullRequestStatus> {
    const pr = toPullRequest((await this.http.request('GET', `${this.base}/pulls/${number}`)).body);
    const raw = (await this.http.request('GET', `${this.base}/pulls/${number}/reviews`, { query: { limit: 50 } })).body as any[];
    // A dismissed review no longer counts; a stale one (made on an older head) still does, as Gitea shows it.
    const reviews = raw.filter((r) => !r.dismissed).map(toReview);
    return { ...pr, reviews, approvedBy: approvers(reviews, pr.author) };
  }

  async mergePullRequest(number: number, opts: { sha?: string; message?: string } = {}): Promise<PullRequestStatus> {
    const before = await this.getPullRequest(number);
    if (before.state !== 'open') return before;
    const body = { Do: 'merge', ...(opts.sha ? { head_commit_id: opts.sha } : {}), ...(opts.message ? { MergeTitleField: opts.message } : {}) };
    let r = await this.http.request('POST', `${this.base}/pulls/${number}/merge`, { body, accept: [405, 409] });
    // Gitea checks a new pull request's mergeability in the background and answers 405 "Please try again later"
    // until it has: a bounded wait (≤ ~10 s), not a conflict.
    for (let i = 0; i < 20 && r.status === 405 && /try again later/i.test(String(r.body?.message ?? '')); i++) {
      await new Promise((res) => setTimeout(res, 500));
      r = await this.http.request('POST', `${this.base}/pulls/${number}/merge`, { body, accept: [405, 409] });
    }
    if (r.status !== 200) throw gitopsError('merge-conflict', this.opts.repository, `pull request #${number} cannot be merged: HTTP ${r.status} (${r.body?.message ?? ''})`, { status: r.status, pullRequest: number });
    return this.getPullRequest(number);
  }

  verifyWebhook(headers: Record<string, string | undefined>, body: Buffer | string, secret: string): void {
    requireSignature(this.opts.repository, header(headers, 'x-gitea-signature'), hmacSha256Hex(secret, body), 'X-Gitea-Signature');
  }

  parseWebhook(headers: Record<string, string | undefined>, body: Buffer | string): WebhookEvent | undefined {
    const event = header(headers, 'x-gitea-event') ?? '';
    if (!event.startsWith('pull_request')) return undefined;
    const p = parseJson(this.opts.repository, body);
    if (!p.pull_request) return undefined;
    const pr = toPullRequest(p.pull_request);
    return { pullRequest: pr.number, action: event === 'pull_request' ? p.action : event.replace(/^pull_request_/, ''), state: pr.state, merged: pr.state === 'merged', headBranch: pr.head.branch, mergeCommit: pr.mergeCommit, repository: p.repository?.full_name };
  }

  private async list(state: 'open' | 'all'): Promise<PullRequest[]> {
    const r = await this.http.request('GET', `${this.base}/pulls`, { query: { state, sort: 'newest', limit: 50 } });
    return (r.body as any[]).map(toPullRequest);
  }
}

function toPullRequest(p: any): PullRequest {
  const merged = Boolean(p.merged);
  return {
    number: p.number,
    url: p.html_url,
    state: merged ? 'merged' : p.state === 'open' ? 'open' : 'closed',
    title: p.title,
    head: { branch: p.head?.ref, sha: p.head?.sha },
    base: p.base?.ref,
    author: p.user?.login,
    ...(merged ? { mergeCommit: p.merge_commit_sha ?? undefined, mergedBy: p.merged_by?.login ?? undefined, mergedAt: p.merged_at ?? undefined } : {}),
  };
}

const REVIEW_STATES: Record<string, Review['state']> = { APPROVED: 'approved', REQUEST_CHANGES: 'changes-requested', COMMENT: 'commented' };
const toReview = (r: any): Review => ({ user: r.user?.login, state: REVIEW_STATES[r.state] ?? 'other', commit: r.commit_id || undefined, at: r.submitted_at ?? undefined });
