/**
 * GitHub pull requests (REST API, 2022-11-28): list/create/get/merge pulls and list reviews. Contract-tested against
 * recorded exchanges (test/fixtures/forge/github). Webhooks: X-Hub-Signature-256 (`sha256=` + HMAC-SHA256 hex).
 */
import { gitopsError } from '../errors';
import type { Forge, OpenPullRequest, PullRequest, PullRequestStatus, Review, WebhookEvent } from '../ports';
import { ForgeHttp } from './http';
import { approvers } from './reviews';
import { header, hmacSha256Hex, parseJson, requireSignature } from './webhook';

export interface GitHubForgeOptions {
  apiUrl?: string;
  owner: string;
  repo: string;
  token: string;
  /** The clone URL, as errors name the repository. */
  repository: string;
}

export class GitHubForge implements Forge {
  private readonly http: ForgeHttp;
  private readonly base: string;

  constructor(private readonly opts: GitHubForgeOptions) {
    this.http = new ForgeHttp({
      baseUrl: (opts.apiUrl ?? 'https://api.github.com').replace(/\/+$/, ''),
      repository: opts.repository,
      headers: { authorization: `Bearer ${opts.token}`, accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', 'user-agent': 'slipway' },
    });
    this.base = `/repos/${encodeURIComponent(opts.owner)}/${encodeURIComponent(opts.repo)}`;
  }

  async openPullRequest(req: OpenPullRequest): Promise<PullRequest> {
    const open = await this.list(req.head, req.base, 'open');
    if (open[0]) return open[0];
    const created = await this.http.request('POST', `${this.base}/pulls`, { body: { title: req.title, head: req.head, base: req.base, body: req.body, maintainer_can_modify: false }, accept: [422] });
    if (created.status === 201) return toPullRequest(created.body);
    // 422: one was opened meanwhile (a retried activity racing its earlier attempt), or the request is wrong.
    const raced = await this.list(req.head, req.base, 'open');
    if (raced[0]) return raced[0];
    throw gitopsError('rejected', this.opts.repository, `POST ${this.base}/pulls: HTTP 422 (${created.body?.errors?.map((e: any) => e.message).join('; ') || created.body?.message})`, { status: 422 });
  }

  async findPullRequest(head: string, base: string): Promise<PullRequest | undefined> {
    return (await this.list(head, base, 'all'))[0];
  }

  async getPullRequest(number: number): Promise<PullRequestStatus> {
    const pr = toPullRequest((await this.http.request('GET', `${this.base}/pulls/${number}`)).body);
    const reviews = ((await this.http.request('GET', `${this.base}/pulls/${number}/reviews`, { query: { per_page: 100 } })).body as any[]).map(toReview);
    return { ...pr, reviews, approvedBy: approvers(reviews, pr.author) };
  }

  async mergePullRequest(number: number, opts: { sha?: string; message?: string } = {}): Promise<PullRequestStatus> {
    const before = await this.getPullRequest(number);
    if (before.state !== 'open') return before;
    const r = await this.http.request('PUT', `${this.base}/pulls/${number}/merge`, { body: { merge_method: 'merge', ...(opts.sha ? { sha: opts.sha } : {}), ...(opts.message ? { commit_title: opts.message } : {}) }, accept: [405, 409] });
    // 405: not mergeable (conflicts, required checks); 409: the head moved from the sha given.
    if (r.status !== 200) throw gitopsError('merge-conflict', this.opts.repository, `pull request #${number} cannot be merged: HTTP ${r.status} (${r.body?.message ?? ''})`, { status: r.status, pullRequest: number });
    return this.getPullRequest(number);
  }

  verifyWebhook(headers: Record<string, string | undefined>, body: Buffer | string, secret: string): void {
    requireSignature(this.opts.repository, header(headers, 'x-hub-signature-256'), `sha256=${hmacSha256Hex(secret, body)}`, 'X-Hub-Signature-256');
  }

  parseWebhook(headers: Record<string, string | undefined>, body: Buffer | string): WebhookEvent | undefined {
    const event = header(headers, 'x-github-event');
    if (event !== 'pull_request' && event !== 'pull_request_review') return undefined;
    const p = parseJson(this.opts.repository, body);
    const pr = toPullRequest(p.pull_request);
    return { pullRequest: pr.number, action: event === 'pull_request_review' ? `review_${p.action}` : p.action, state: pr.state, merged: pr.state === 'merged', headBranch: pr.head.branch, mergeCommit: pr.mergeCommit, repository: p.repository?.full_name };
  }

  private async list(head: string, base: string, state: 'open' | 'all'): Promise<PullRequest[]> {
    const r = await this.http.request('GET', `${this.base}/pulls`, { query: { head: `${this.opts.owner}:${head}`, base, state, sort: 'created', direction: 'desc', per_page: 30 } });
    return (r.body as any[]).map(toPullRequest).filter((p) => p.head.branch === head && p.base === base);
  }
}

function toPullRequest(p: any): PullRequest {
  const merged = Boolean(p.merged || p.merged_at);
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

const REVIEW_STATES: Record<string, Review['state']> = { APPROVED: 'approved', CHANGES_REQUESTED: 'changes-requested', COMMENTED: 'commented' };
const toReview = (r: any): Review => ({ user: r.user?.login, state: REVIEW_STATES[r.state] ?? 'other', commit: r.commit_id ?? undefined, at: r.submitted_at ?? undefined });
