/**
 * Azure Repos pull requests (Azure DevOps Git REST API 7.1): pullrequests list (searchCriteria), create, get, and
 * completion by PATCH status=completed with lastMergeSourceCommit. Reviews are the reviewers' votes
 * (10 approved, 5 approved with suggestions, -5 waiting, -10 rejected). Contract-tested against recorded exchanges.
 * Webhooks: service hooks carry no signature; the subscription's HTTP basic auth (user:password) is checked.
 */
import { gitopsError } from '../errors';
import type { Forge, OpenPullRequest, PullRequest, PullRequestStatus, Review, WebhookEvent } from '../ports';
import { ForgeHttp } from './http';
import { approvers } from './reviews';
import { constantTimeEqual, header, parseJson } from './webhook';

export interface AzureReposForgeOptions {
  /** https://dev.azure.com/<organisation> (or a server's collection URL). */
  apiUrl: string;
  project: string;
  repo: string;
  token: string;
  repository: string;
}

const refName = (branch: string) => `refs/heads/${branch}`;
const branchOf = (ref: string | undefined) => ref?.replace(/^refs\/heads\//, '') ?? '';

export class AzureReposForge implements Forge {
  private readonly http: ForgeHttp;
  private readonly base: string;

  constructor(private readonly opts: AzureReposForgeOptions) {
    this.http = new ForgeHttp({
      baseUrl: opts.apiUrl.replace(/\/+$/, ''),
      repository: opts.repository,
      headers: { authorization: `Basic ${Buffer.from(`:${opts.token}`).toString('base64')}` },
      query: { 'api-version': '7.1' },
    });
    this.base = `/${encodeURIComponent(opts.project)}/_apis/git/repositories/${encodeURIComponent(opts.repo)}`;
  }

  async openPullRequest(req: OpenPullRequest): Promise<PullRequest> {
    const open = await this.list(req.head, req.base, 'active');
    if (open[0]) return open[0];
    const created = await this.http.request('POST', `${this.base}/pullrequests`, { body: { sourceRefName: refName(req.head), targetRefName: refName(req.base), title: req.title, description: req.body.slice(0, 4000) }, accept: [409] });
    if (created.status === 201 || created.status === 200) return toPullRequest(created.body);
    // 409 TF401179: an active pull request for these branches exists (opened by an earlier attempt).
    const raced = await this.list(req.head, req.base, 'active');
    if (raced[0]) return raced[0];
    throw gitopsError('rejected', this.opts.repository, `POST ${this.base}/pullrequests: HTTP 409 (${created.body?.message ?? ''})`, { status: 409 });
  }

  async findPullRequest(head: string, base: string): Promise<PullRequest | undefined> {
    return (await this.list(head, base, 'all'))[0];
  }

  async getPullRequest(number: number): Promise<PullRequestStatus> {
    const raw = (await this.http.request('GET', `${this.base}/pullrequests/${number}`)).body;
    const pr = toPullRequest(raw);
    const reviews: Review[] = ((raw.reviewers ?? []) as any[]).map((r) => ({ user: r.uniqueName, state: r.vote >= 5 ? 'approved' : r.vote <= -5 ? 'changes-requested' : 'other' }));
    return { ...pr, reviews, approvedBy: approvers(reviews, pr.author) };
  }

  async mergePullRequest(number: number, opts: { sha?: string; message?: string } = {}): Promise<PullRequestStatus> {
    const before = await this.getPullRequest(number);
    if (before.state !== 'open') return before;
    if (opts.sha && before.head.sha && opts.sha !== before.head.sha) throw gitopsError('merge-conflict', this.opts.repository, `pull request #${number}'s head moved to ${before.head.sha.slice(0, 12)}; expected ${opts.sha.slice(0, 12)}`, { pullRequest: number });
    const r = await this.http.request('PATCH', `${this.base}/pullrequests/${number}`, {
      body: { status: 'completed', lastMergeSourceCommit: { commitId: opts.sha ?? before.head.sha }, completionOptions: { mergeStrategy: 'noFastForward', deleteSourceBranch: false, ...(opts.message ? { mergeCommitMessage: opts.message } : {}) } },
      accept: [409],
    });
    if (r.status === 409) throw gitopsError('merge-conflict', this.opts.repository, `pull request #${number} cannot be completed: HTTP 409 (${r.body?.message ?? ''})`, { status: 409, pullRequest: number });
    // Completion is asynchronous: the answer may still be active while the merge runs; a conflict shows in mergeStatus.
    if (r.body?.status === 'active' && r.body?.mergeStatus === 'conflicts') throw gitopsError('merge-conflict', this.opts.repository, `pull request #${number} has merge conflicts`, { pullRequest: number });
    return this.getPullRequest(number);
  }

  verifyWebhook(headers: Record<string, string | undefined>, _body: Buffer | string, secret: string): void {
    const given = header(headers, 'authorization');
    if (!given?.startsWith('Basic ')) throw gitopsError('bad-signature', this.opts.repository, 'service hook without basic auth (set a user name and password on the subscription)');
    if (!constantTimeEqual(Buffer.from(given.slice(6).trim(), 'base64').toString(), secret)) throw gitopsError('bad-signature', this.opts.repository, 'service hook basic auth does not match');
  }

  parseWebhook(_headers: Record<string, string | undefined>, body: Buffer | string): WebhookEvent | undefined {
    const p = parseJson(this.opts.repository, body);
    if (typeof p.eventType !== 'string' || !p.eventType.startsWith('git.pullrequest.') || !p.resource) return undefined;
    const pr = toPullRequest(p.resource);
    return { pullRequest: pr.number, action: p.eventType.replace('git.pullrequest.', ''), state: pr.state, merged: pr.state === 'merged', headBranch: pr.head.branch, mergeCommit: pr.mergeCommit, repository: p.resource.repository?.name };
  }

  private async list(head: string, base: string, status: 'active' | 'all'): Promise<PullRequest[]> {
    const r = await this.http.request('GET', `${this.base}/pullrequests`, { query: { 'searchCriteria.sourceRefName': refName(head), 'searchCriteria.targetRefName': refName(base), 'searchCriteria.status': status, $top: 30 } });
    return ((r.body?.value ?? []) as any[]).map(toPullRequest).sort((a, b) => b.number - a.number);
  }
}

function toPullRequest(p: any): PullRequest {
  const merged = p.status === 'completed';
  const web = p.repository?.webUrl;
  return {
    number: p.pullRequestId,
    url: web ? `${web}/pullrequest/${p.pullRequestId}` : p.url,
    state: merged ? 'merged' : p.status === 'active' ? 'open' : 'closed',
    title: p.title,
    head: { branch: branchOf(p.sourceRefName), sha: p.lastMergeSourceCommit?.commitId },
    base: branchOf(p.targetRefName),
    author: p.createdBy?.uniqueName,
    ...(merged ? { mergeCommit: p.lastMergeCommit?.commitId, mergedBy: p.closedBy?.uniqueName, mergedAt: p.closedDate } : {}),
  };
}
