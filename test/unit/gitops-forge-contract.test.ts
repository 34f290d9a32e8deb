/**
 * Contract tests of the GitHub and Azure Repos forge adapters against recorded exchanges (test/fixtures/forge):
 * a local HTTP server on 127.0.0.1 plays each scenario's responses in order and checks that every request the
 * adapter makes is the recorded one (method, path, the recorded query parameters and body fields, the auth
 * header); the test then checks how the adapter reads the answers — pull request state, merge commit and merger,
 * reviews to approvers — and how it types each failure (401/403 auth, 404, 405/409 merge conflict, 422, 503,
 * Azure's 203 sign-in page). Webhooks: the recorded delivery verifies, a tampered one or a wrong secret does not,
 * and GitHub's documented signature example checks the HMAC itself.
 * What it does not prove: that GitHub and Azure answer exactly so (the fixtures follow the documented shapes).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { failureOf } from '../../activities/gitops/errors';
import { AzureReposForge } from '../../activities/gitops/forge/azure-repos';
import { GitHubForge } from '../../activities/gitops/forge/github';
import { forgeFor } from '../../activities/gitops/forge';
import { hmacSha256Hex } from '../../activities/gitops/forge/webhook';
import type { Forge } from '../../activities/gitops/ports';
import { parseGitopsDelivery } from '../../model/gitops';

type Exchange = { request: { method: string; path: string; query?: Record<string, string>; body?: Record<string, unknown> }; response: { status: number; headers: Record<string, string>; body: unknown } };
type Recording = { scenarios: Record<string, Exchange[]>; webhook: { headers: Record<string, string>; secret: string; body: string } };
const load = (name: string): Recording => JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'forge', `${name}.json`), 'utf8'));
const GITHUB = load('github');
const AZURE = load('azure-repos');
const TOKEN = 'ghp_recordedTokenValue0123456789abcdefABCD';
const HEAD = 'a'.repeat(40);
const MERGE = 'c'.repeat(40);

let server: Server;
let base: string;
let script: Exchange[] = [];
const seen: { method: string; path: string; query: Record<string, string>; body: any; auth?: string }[] = [];
const problems: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = '';
    req.on('data', (c) => (text += c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const got = { method: req.method ?? '', path: url.pathname, query: Object.fromEntries(url.searchParams), body: text ? JSON.parse(text) : undefined, auth: req.headers.authorization };
      seen.push(got);
      const next = script.shift();
      if (!next) {
        problems.push(`unexpected ${got.method} ${got.path}`);
        res.writeHead(500).end();
        return;
      }
      const want = next.request;
      if (want.method !== got.method || want.path !== got.path) problems.push(`expected ${want.method} ${want.path}, got ${got.method} ${got.path}`);
      for (const [k, v] of Object.entries(want.query ?? {})) if (got.query[k] !== v) problems.push(`${got.path}: query ${k}=${got.query[k]}, expected ${v}`);
      if (want.body) for (const [k, v] of Object.entries(want.body)) if (JSON.stringify(got.body?.[k]) !== JSON.stringify(v)) problems.push(`${got.path}: body.${k}=${JSON.stringify(got.body?.[k])}, expected ${JSON.stringify(v)}`);
      const r = next.response;
      res.writeHead(r.status, r.headers).end(typeof r.body === 'string' ? r.body : JSON.stringify(r.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

/** Runs `fn` against a scenario; every recorded exchange must be used, in order, with no surprise. */
async function play<T>(rec: Recording, name: string, fn: () => Promise<T>): Promise<T> {
  script = [...rec.scenarios[name]];
  seen.length = 0;
  problems.length = 0;
  try {
    return await fn();
  } finally {
    expect(problems).toEqual([]);
    expect(script.map((e) => `${e.request.method} ${e.request.path}`)).toEqual([]);
  }
}
const failed = async (p: Promise<unknown>) => p.then(() => { throw new Error('did not fail'); }, (e) => ({ failure: failureOf(e), type: e.type, nonRetryable: e.nonRetryable, message: String(e.message) }));
const REQ = { head: 'slipway/qa/release-delivery-v1.0.2', base: 'main', title: 'delivery v1.0.2 to qa', body: 'Slipway release release:delivery:v1.0.2' };

describe('GitHub', () => {
  const repository = 'https://github.com/team/environments.git';
  const gh = () => new GitHubForge({ apiUrl: base, owner: 'team', repo: 'environments', token: TOKEN, repository });

  test('opens a pull request when none is open, with the bearer token', async () => {
    const pr = await play(GITHUB, 'open-new', () => gh().openPullRequest(REQ));
    expect(pr).toEqual({ number: 7, url: 'https://github.com/team/environments/pull/7', state: 'open', title: REQ.title, head: { branch: REQ.head, sha: HEAD }, base: 'main', author: 'slipway-bot' });
    expect(new Set(seen.map((s) => s.auth))).toEqual(new Set([`Bearer ${TOKEN}`]));
  });

  test('finds the open one instead of opening a second; a 422 "already exists" race finds it too', async () => {
    expect((await play(GITHUB, 'open-existing', () => gh().openPullRequest(REQ))).number).toBe(7);
    expect(seen.map((s) => s.method)).toEqual(['GET']);
    expect((await play(GITHUB, 'open-race-422', () => gh().openPullRequest(REQ))).number).toBe(7);
  });

  test('a 422 for another reason is a non-retryable rejection naming the repository', async () => {
    const r = await play(GITHUB, 'open-422-invalid', () => failed(gh().openPullRequest(REQ)));
    expect(r).toMatchObject({ failure: 'rejected', nonRetryable: true });
    expect(r.message).toMatch(/^https:\/\/github\.com\/team\/environments\.git: POST \/repos\/team\/environments\/pulls: HTTP 422/);
  });

  test('findPullRequest reads a closed, unmerged one', async () => {
    expect(await play(GITHUB, 'find-closed', () => gh().findPullRequest(REQ.head, 'main'))).toMatchObject({ number: 7, state: 'closed' });
  });

  test('a merged pull request: merge commit, merger, and approvers from each reviewer’s latest review (author excluded)', async () => {
    const pr = await play(GITHUB, 'get-merged', () => gh().getPullRequest(7));
    expect(pr).toMatchObject({ state: 'merged', mergeCommit: MERGE, mergedBy: 'alice', mergedAt: '2026-11-30T10:20:00Z' });
    expect(pr.approvedBy.sort()).toEqual(['alice', 'carol']); // bob's approval was withdrawn by his later "changes requested"
    expect(pr.reviews).toHaveLength(6);
  });

  test('merges with the expected head sha and reads the merged state back', async () => {
    expect(await play(GITHUB, 'merge-ok', () => gh().mergePullRequest(7, { sha: HEAD }))).toMatchObject({ state: 'merged', mergeCommit: MERGE, mergedBy: 'alice' });
  });

  test.each([
    ['merge-405', HEAD, /cannot be merged: HTTP 405 \(Pull Request is not mergeable\)/],
    ['merge-409', 'e'.repeat(40), /cannot be merged: HTTP 409 \(Head branch was modified/],
  ])('%s is a typed merge conflict', async (name, sha, message) => {
    const r = await play(GITHUB, name, () => failed(gh().mergePullRequest(7, { sha })));
    expect(r).toMatchObject({ failure: 'merge-conflict', nonRetryable: true });
    expect(r.message).toMatch(message);
  });

  test.each([
    ['get-401', 'auth', true, 'Bad credentials'],
    ['get-403', 'auth', true, 'Resource not accessible by personal access token'],
    ['get-404', 'not-found', true, 'Not Found'],
    ['get-503', 'unreachable', false, 'Service Unavailable'],
  ])('%s → %s', async (name, failure, nonRetryable, text) => {
    const r = await play(GITHUB, name, () => failed(gh().getPullRequest(7)));
    expect(r).toMatchObject({ failure, nonRetryable });
    expect(r.message).toContain(`${repository}: GET /repos/team/environments/pulls/7: HTTP ${name.slice(-3)} (${text})`);
    expect(r.message).not.toContain(TOKEN);
  });

  test('webhooks: the recorded delivery verifies and parses; tampered or wrongly keyed ones are refused', () => {
    const { headers, body, secret } = GITHUB.webhook;
    expect(() => gh().verifyWebhook(headers, body, secret)).not.toThrow();
    expect(gh().parseWebhook(headers, body)).toEqual({ pullRequest: 7, action: 'closed', state: 'merged', merged: true, headBranch: REQ.head, mergeCommit: MERGE, repository: 'team/environments' });
    for (const [h, b, s] of [[headers, body.replace('"number":7', '"number":8'), secret], [headers, body, 'wrong'], [{ ...headers, 'X-Hub-Signature-256': undefined }, body, secret]] as const) {
      let err: unknown;
      try {
        gh().verifyWebhook(h as Record<string, string>, b, s);
      } catch (e) {
        err = e;
      }
      expect(failureOf(err)).toBe('bad-signature');
    }
    expect(gh().parseWebhook({ 'X-GitHub-Event': 'push' }, '{}')).toBeUndefined();
  });

  test("the HMAC matches GitHub's documented example (secret \"It's a Secret to Everybody\", body \"Hello, World!\")", () => {
    expect(hmacSha256Hex("It's a Secret to Everybody", 'Hello, World!')).toBe('757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17');
  });
});

describe('Azure Repos', () => {
  const repository = 'https://dev.azure.com/contoso/delivery/_git/environments';
  const az = () => new AzureReposForge({ apiUrl: base, project: 'delivery', repo: 'environments', token: TOKEN, repository });

  test('opens one with refs/heads/ names, api-version 7.1 and basic auth with the PAT; a 409 race finds the active one', async () => {
    const pr = await play(AZURE, 'open-new', () => az().openPullRequest(REQ));
    expect(pr).toEqual({ number: 42, url: 'https://dev.azure.com/contoso/delivery/_git/environments/pullrequest/42', state: 'open', title: REQ.title, head: { branch: REQ.head, sha: HEAD }, base: 'main', author: 'slipway@contoso.com' });
    expect(new Set(seen.map((s) => s.auth))).toEqual(new Set([`Basic ${Buffer.from(`:${TOKEN}`).toString('base64')}`]));
    expect((await play(AZURE, 'open-race-409', () => az().openPullRequest(REQ))).number).toBe(42);
  });

  test('a completed pull request: merge commit, closedBy as merger, votes ≥ 5 approve (author excluded)', async () => {
    const pr = await play(AZURE, 'get-completed', () => az().getPullRequest(42));
    expect(pr).toMatchObject({ state: 'merged', mergeCommit: MERGE, mergedBy: 'alice@contoso.com', mergedAt: '2026-11-30T10:20:00.000Z' });
    expect(pr.approvedBy).toEqual(['alice@contoso.com', 'carol@contoso.com']);
    expect(pr.reviews.find((r) => r.user === 'bob@contoso.com')?.state).toBe('changes-requested');
  });

  test('an abandoned one is closed, with no merger', async () => {
    const pr = await play(AZURE, 'get-abandoned', () => az().getPullRequest(42));
    expect(pr.state).toBe('closed');
    expect(pr.mergedBy).toBeUndefined();
  });

  test('completes with lastMergeSourceCommit and a no-fast-forward merge; a conflicting merge is typed', async () => {
    expect(await play(AZURE, 'merge-ok', () => az().mergePullRequest(42, { sha: HEAD }))).toMatchObject({ state: 'merged', mergeCommit: MERGE });
    expect(await play(AZURE, 'merge-conflicts', () => failed(az().mergePullRequest(42)))).toMatchObject({ failure: 'merge-conflict', message: `${repository}: pull request #42 has merge conflicts` });
  });

  test('a head that moved from the expected sha is refused before completing', async () => {
    script = [...AZURE.scenarios['merge-conflicts']].slice(0, 1);
    expect(await failed(az().mergePullRequest(42, { sha: 'f'.repeat(40) }))).toMatchObject({ failure: 'merge-conflict', message: expect.stringContaining("head moved to aaaaaaaaaaaa; expected ffffffffffff") });
    expect(script).toEqual([]);
  });

  test.each([
    ['get-203-sign-in', 'auth', /HTTP 203 with a sign-in page/],
    ['get-401', 'auth', /HTTP 401 \(Access Denied: The Personal Access Token used has expired\.\)/],
    ['get-403', 'auth', /HTTP 403 \(TF401027: You need the Git 'PullRequestContribute' permission/],
    ['get-404', 'not-found', /HTTP 404 \(TF401180: The requested pull request was not found\.\)/],
  ])('%s → %s', async (name, failure, message) => {
    const r = await play(AZURE, name, () => failed(az().getPullRequest(42)));
    expect(r).toMatchObject({ failure, nonRetryable: true });
    expect(r.message).toMatch(message);
    expect(r.message.startsWith(`${repository}: GET /delivery/_apis/git/repositories/environments/pullrequests/42`)).toBe(true);
  });

  test('service hooks: basic auth checked (they carry no signature); the merged event parsed', () => {
    const { headers, body, secret } = AZURE.webhook;
    expect(() => az().verifyWebhook(headers, body, secret)).not.toThrow();
    for (const h of [{ Authorization: `Basic ${Buffer.from('slipway-hook:guess').toString('base64')}` }, {}]) {
      let err: unknown;
      try {
        az().verifyWebhook(h, body, secret);
      } catch (e) {
        err = e;
      }
      expect(failureOf(err)).toBe('bad-signature');
    }
    expect(az().parseWebhook(headers, body)).toEqual({ pullRequest: 42, action: 'merged', state: 'merged', merged: true, headBranch: REQ.head, mergeCommit: MERGE, repository: 'environments' });
  });
});

describe('forgeFor', () => {
  const section = (forge: Record<string, unknown>, url: string) => parseGitopsDelivery({ type: 'gitops', repository: { url, path: 'qa' }, format: 'kustomize', merge: 'pull-request', forge: { tokenEnv: 'FORGE_TOKEN', ...forge } });
  const env = { FORGE_TOKEN: TOKEN };

  test('derives each API from the clone URL (an apiUrl overrides it) and reads the token from the named variable', async () => {
    const gh: Forge = forgeFor(section({ type: 'github', apiUrl: base }, 'https://github.com/team/environments.git'), env);
    expect(gh).toBeInstanceOf(GitHubForge);
    expect((await play(GITHUB, 'get-merged', () => gh.getPullRequest(7))).mergedBy).toBe('alice');
    const az = forgeFor(section({ type: 'azure-repos', apiUrl: base }, 'https://dev.azure.com/contoso/delivery/_git/environments'), env);
    expect((await play(AZURE, 'get-completed', () => az.getPullRequest(42))).mergedBy).toBe('alice@contoso.com');
    expect(await failed(Promise.resolve().then(() => forgeFor(section({ type: 'github' }, 'https://github.com/team/environments.git'), {})))).toMatchObject({ failure: 'auth', message: "https://github.com/team/environments.git: the workers' environment has no FORGE_TOKEN (forge.tokenEnv)" });
  });
});
