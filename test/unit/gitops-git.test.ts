/**
 * The Git adapter (activities/gitops/git.ts) against real git: bare repositories served over HTTP by git's own
 * `git http-backend` (CGI, behind a small Node server on 127.0.0.1 that demands the token), plus file:// and a
 * closed port for the failure cases. Checked: the change lands whole with its trailers, directly or on the release
 * branch; a retry finds its commit instead of making a second; a moving target branch is re-fetched; failures are
 * typed and name the repository; nothing is pushed when the file or entry is wrong; the token travels only as a
 * header from git's environment (never in argv or the URL); reverts land, are found again, and conflicts are typed.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { failureOf } from '../../activities/gitops/errors';
import { gitEnv, gitFailure, GitEnvironmentRepository, releaseBranch, slipwayTrailers } from '../../activities/gitops/git';
import type { ReleaseChange } from '../../activities/gitops/ports';
import type { GitopsFormat } from '../../model/gitops';

const TOKEN = 'gto_recorded-token-0123456789abcdef';
const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const D3 = `sha256:${'3'.repeat(64)}`;
const REPO = '127.0.0.1:5000/delivery';
const KUSTOMIZE: GitopsFormat = { type: 'kustomize', imageName: 'delivery' };
const overlay = (digest: string) => `# qa overlay\nresources: [../../base]\nimages:\n  - name: delivery\n    newName: ${REPO}\n    digest: ${digest}\n`;

let root: string;
let server: Server;
let base: string;
/** Every Authorization header the server saw, and a hook run before the next receive-pack (a push). */
const auths: (string | undefined)[] = [];
let beforePush: (() => void) | undefined;

const git = (cwd: string, ...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'init.defaultBranch=main', ...args], { cwd, encoding: 'utf8', env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null' } }).trim();

/** A bare repository `name` under the server root with one commit on main holding `files`. */
function bareRepo(name: string, files: Record<string, string>): { bare: string; url: string } {
  const bare = join(root, 'srv', `${name}.git`);
  git(root, 'init', '-q', '--bare', bare);
  const work = mkdtempSync(join(root, 'seed-'));
  git(work, 'init', '-q');
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(work, f, '..'), { recursive: true });
    writeFileSync(join(work, f), text);
  }
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'seed');
  git(work, 'push', '-q', bare, 'HEAD:refs/heads/main');
  return { bare, url: `${base}/${name}.git` };
}

/** Commits `text` to `file` on `branch` of a bare repository, as another user would. */
function commitAs(bare: string, file: string, text: string, message = 'someone else', branch = 'main') {
  const work = mkdtempSync(join(root, 'other-'));
  git(work, 'clone', '-q', '--branch', branch, bare, '.');
  writeFileSync(join(work, file), text);
  git(work, 'commit', '-q', '-am', message);
  git(work, 'push', '-q', 'origin', `HEAD:${branch}`);
}

const change = (over: Partial<ReleaseChange> = {}): ReleaseChange => ({ workflowId: 'release:delivery:v1.0.2', environment: 'qa', service: 'delivery', version: 'v1.0.2', repository: REPO, digest: D2, ...over });
const repoFor = (url: string, over: Partial<ConstructorParameters<typeof GitEnvironmentRepository>[0]> = {}) =>
  new GitEnvironmentRepository({ url, branch: 'main', path: 'overlays/qa', format: KUSTOMIZE, token: TOKEN, workRoot: root, ...over });
const revList = (bare: string, ref = 'main') => git(bare, 'rev-list', ref).split('\n').filter(Boolean);
const show = (bare: string, ref: string, file = 'overlays/qa/kustomization.yaml') => git(bare, 'show', `${ref}:${file}`);
const failed = async (p: Promise<unknown>) => p.then(() => { throw new Error('did not fail'); }, (e) => ({ failure: failureOf(e), type: e.type, nonRetryable: e.nonRetryable, message: String(e.message) }));

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'slipway-gitops-git-'));
  mkdirSync(join(root, 'srv'));
  // git http-backend as CGI: the smart HTTP protocol exactly as a Git server speaks it, behind a token check.
  server = createServer((req, res) => {
    auths.push(req.headers.authorization);
    if (req.headers.authorization !== `Basic ${Buffer.from(`x-access-token:${TOKEN}`).toString('base64')}`) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' }).end();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname.endsWith('/git-receive-pack') && beforePush) {
      const hook = beforePush;
      beforePush = undefined;
      hook();
    }
    const cgi = spawn('git', ['http-backend'], {
      env: { PATH: process.env.PATH, GIT_PROJECT_ROOT: join(root, 'srv'), GIT_HTTP_EXPORT_ALL: '1', REMOTE_USER: 'slipway', PATH_INFO: url.pathname, QUERY_STRING: url.search.slice(1), REQUEST_METHOD: req.method, CONTENT_TYPE: req.headers['content-type'] ?? '', GIT_CONFIG_GLOBAL: '/dev/null' },
    });
    req.pipe(cgi.stdin);
    const chunks: Buffer[] = [];
    cgi.stdout.on('data', (c) => chunks.push(c));
    cgi.on('close', () => {
      const out = Buffer.concat(chunks);
      const split = out.indexOf('\r\n\r\n');
      const head = out.subarray(0, split).toString().split('\r\n');
      const headers: Record<string, string> = {};
      let status = 200;
      for (const line of head) {
        const [k, ...v] = line.split(':');
        if (k.toLowerCase() === 'status') status = Number.parseInt(v.join(':'), 10);
        else headers[k] = v.join(':').trim();
      }
      res.writeHead(status, headers).end(out.subarray(split + 4));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(root, { recursive: true, force: true });
});

describe('applyChange', () => {
  test('direct: one commit on main with the trailers; a retry finds it and makes no second', async () => {
    const { bare, url } = bareRepo('direct', { 'overlays/qa/kustomization.yaml': overlay(D1) });
    const before = revList(bare).length;
    const first = await repoFor(url).applyChange(change(), 'direct');
    expect(first).toMatchObject({ state: 'landed', branch: 'main', reused: false, previousDigest: D1 });
    expect(revList(bare)[0]).toBe(first.commit);
    expect(show(bare, 'main')).toBe(overlay(D2).trim());
    expect(slipwayTrailers(git(bare, 'log', '-1', '--format=%B', 'main'))).toEqual({ 'Slipway-Release': 'release:delivery:v1.0.2', 'Slipway-Environment': 'qa', 'Slipway-Digest': D2 });
    const again = await repoFor(url).applyChange(change(), 'direct');
    expect(again).toMatchObject({ state: 'landed', commit: first.commit, reused: true });
    expect(revList(bare)).toHaveLength(before + 1);
    // Another release to the same digest (a rebuild that produced the same image) has nothing to commit.
    expect(await repoFor(url).applyChange(change({ workflowId: 'release:delivery:v1.0.3', version: 'v1.0.3' }), 'direct')).toMatchObject({ state: 'unchanged' });
    expect(revList(bare)).toHaveLength(before + 1);
  });

  test('branch: the commit goes to slipway/<env>/<release>, main untouched; a retry reuses it; the token went only as a header', async () => {
    const { bare, url } = bareRepo('branch', { 'overlays/qa/kustomization.yaml': overlay(D1) });
    const main = revList(bare)[0];
    auths.length = 0;
    const first = await repoFor(url).applyChange(change(), 'branch');
    const branch = releaseBranch('release:delivery:v1.0.2', 'qa');
    expect(branch).toBe('slipway/qa/release-delivery-v1.0.2');
    expect(first).toMatchObject({ state: 'branch', branch, base: main, reused: false });
    expect(git(bare, 'rev-parse', branch)).toBe(first.commit);
    expect(revList(bare)[0]).toBe(main);
    expect(await repoFor(url).applyChange(change(), 'branch')).toMatchObject({ state: 'branch', commit: first.commit, reused: true });
    expect(auths.length).toBeGreaterThan(0);
    expect(new Set(auths)).toEqual(new Set([`Basic ${Buffer.from(`x-access-token:${TOKEN}`).toString('base64')}`]));
    // Once merged (here: a merge commit on main), a retry finds it on main and does nothing.
    const work = mkdtempSync(join(root, 'merge-'));
    git(work, 'clone', '-q', bare, '.');
    git(work, 'merge', '-q', '--no-ff', '-m', 'Merge pull request 1', `origin/${branch}`);
    git(work, 'push', '-q', 'origin', 'HEAD:main');
    expect(await repoFor(url).applyChange(change(), 'branch')).toMatchObject({ state: 'landed', commit: first.commit, reused: true });
    expect(await repoFor(url).findChange('release:delivery:v1.0.2', 'qa', D2)).toEqual({ where: 'target', commit: first.commit, digest: D2 });
  });

  test('a target branch that moves between fetch and push is fetched again and the edit redone on its tip', async () => {
    const { bare, url } = bareRepo('race', { 'overlays/qa/kustomization.yaml': overlay(D1), 'README.md': 'env\n' });
    beforePush = () => commitAs(bare, 'README.md', 'env, edited meanwhile\n');
    const r = await repoFor(url).applyChange(change(), 'direct');
    expect(r.state).toBe('landed');
    const [tip, parent] = revList(bare);
    expect(tip).toBe(r.commit);
    expect(git(bare, 'log', '-1', '--format=%s', parent)).toBe('someone else');
    expect(show(bare, 'main', 'README.md')).toBe('env, edited meanwhile');
  });

  test('missing branch, file or entry: typed failures naming the repository, and nothing pushed', async () => {
    const { bare, url } = bareRepo('bad', { 'overlays/qa/kustomization.yaml': 'resources: [../../base]\n' });
    const refs = () => git(bare, 'for-each-ref', '--format=%(refname)');
    const before = refs();
    expect(await failed(repoFor(url, { branch: 'production' }).applyChange(change(), 'branch'))).toMatchObject({ failure: 'branch-missing', nonRetryable: true, message: `${url}: has no branch production` });
    expect(await failed(repoFor(url, { path: 'overlays/prod' }).applyChange(change(), 'branch'))).toMatchObject({ failure: 'not-found', message: `${url}: branch main has no file overlays/prod/kustomization.yaml` });
    const entry = await failed(repoFor(url).applyChange(change(), 'branch'));
    expect(entry).toMatchObject({ failure: 'entry-missing', type: 'GitopsEntryMissingError' });
    expect(entry.message).toContain(`${url}: overlays/qa/kustomization.yaml has no images: entry named delivery`);
    expect(refs()).toBe(before);
  });

  test('a bad token, a closed port and a missing repository are told apart', async () => {
    const { url } = bareRepo('auth', { 'overlays/qa/kustomization.yaml': overlay(D1) });
    const auth = await failed(repoFor(url, { token: 'wrong' }).applyChange(change(), 'direct'));
    expect(auth).toMatchObject({ failure: 'auth', nonRetryable: true });
    expect(auth.message.startsWith(`${url}: git ls-remote:`)).toBe(true);
    expect(auth.message).not.toContain('wrong');
    expect(await failed(repoFor('http://127.0.0.1:9/team/env.git').applyChange(change(), 'direct'))).toMatchObject({ failure: 'unreachable', nonRetryable: false });
    expect(await failed(repoFor(`file://${root}/srv/nothing.git`).applyChange(change(), 'direct'))).toMatchObject({ failure: 'not-found' });
  });
});

describe('revertChange', () => {
  test('reverts the release commit on main (after other changes), once; a retry finds the revert', async () => {
    const { bare, url } = bareRepo('revert', { 'overlays/qa/kustomization.yaml': overlay(D1), 'README.md': 'env\n' });
    const landed = await repoFor(url).applyChange(change(), 'direct');
    commitAs(bare, 'README.md', 'later change\n');
    const r = await repoFor(url).revertChange('release:delivery:v1.0.2', 'qa', 'direct');
    expect(r).toMatchObject({ state: 'landed', reverts: landed.commit, reused: false });
    expect(show(bare, 'main')).toBe(overlay(D1).trim());
    expect(show(bare, 'main', 'README.md')).toBe('later change');
    expect(slipwayTrailers(git(bare, 'log', '-1', '--format=%B', 'main'))).toMatchObject({ 'Slipway-Revert-Of': landed.commit });
    const count = revList(bare).length;
    expect(await repoFor(url).revertChange('release:delivery:v1.0.2', 'qa', 'direct')).toMatchObject({ state: 'landed', commit: r.commit, reused: true });
    expect(revList(bare)).toHaveLength(count);
    // The revert commit carries Slipway-Release too, but is never mistaken for the release's change.
    expect(await repoFor(url).findChange('release:delivery:v1.0.2', 'qa')).toMatchObject({ where: 'target', commit: landed.commit });
  });

  test('on a revert branch for a pull request; nothing to revert when the change never landed', async () => {
    const { bare, url } = bareRepo('revert-pr', { 'overlays/qa/kustomization.yaml': overlay(D1) });
    expect(await repoFor(url).revertChange('release:delivery:v1.0.2', 'qa', 'branch')).toMatchObject({ state: 'nothing' });
    await repoFor(url).applyChange(change(), 'direct');
    const r = await repoFor(url).revertChange('release:delivery:v1.0.2', 'qa', 'branch');
    expect(r).toMatchObject({ state: 'branch', branch: 'slipway-revert/qa/release-delivery-v1.0.2' });
    expect(show(bare, r.branch)).toBe(overlay(D1).trim());
    expect(await repoFor(url).revertChange('release:delivery:v1.0.2', 'qa', 'branch')).toMatchObject({ state: 'branch', commit: r.commit, reused: true });
  });

  test('a later change to the same line makes the revert a typed merge conflict, and nothing is pushed', async () => {
    const { bare, url } = bareRepo('conflict', { 'overlays/qa/kustomization.yaml': overlay(D1) });
    await repoFor(url).applyChange(change(), 'direct');
    commitAs(bare, 'overlays/qa/kustomization.yaml', overlay(D3), 'hotfix');
    const tip = revList(bare)[0];
    const r = await failed(repoFor(url).revertChange('release:delivery:v1.0.2', 'qa', 'direct'));
    expect(r).toMatchObject({ failure: 'merge-conflict', nonRetryable: true });
    expect(r.message).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/conflict\.git: reverting [0-9a-f]{12} \(slipway: delivery v1\.0\.2 to qa\) on main:/);
    expect(revList(bare)[0]).toBe(tip);
  });
});

describe('pure parts', () => {
  test('gitEnv puts the token in an origin-scoped extraHeader, never in argv or the URL; no prompts, no user config', () => {
    const env = gitEnv('https://git.example.com/team/env.git', TOKEN);
    expect(env).toMatchObject({ GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'http.https://git.example.com/.extraHeader' });
    expect(Buffer.from(env.GIT_CONFIG_VALUE_0!.replace('Authorization: Basic ', ''), 'base64').toString()).toBe(`x-access-token:${TOKEN}`);
    expect(gitEnv('file:///srv/env.git', TOKEN).GIT_CONFIG_COUNT).toBeUndefined();
  });

  test.each([
    ["fatal: Authentication failed for 'https://h/x.git/'", 'auth'],
    ["fatal: could not read Username for 'https://h': terminal prompts disabled", 'auth'],
    ["fatal: unable to access 'https://h/x.git/': The requested URL returned error: 403", 'auth'],
    ["fatal: unable to access 'https://h/x.git/': Failed to connect to h port 443: Connection refused", 'unreachable'],
    ["fatal: unable to access 'https://h/x.git/': The requested URL returned error: 502", 'unreachable'],
    ["fatal: unable to access 'https://nohost/x.git/': Could not resolve host: nohost", 'unreachable'],
    ['remote: Repository not found.\nfatal: repository \'https://h/x.git/\' not found', 'not-found'],
    ['CONFLICT (content): Merge conflict in a.yaml\nerror: could not revert 1234567', 'merge-conflict'],
    ['error: some other refusal', 'rejected'],
  ])('git stderr %j is %s', (stderr, failure) => {
    expect(gitFailure(stderr)).toBe(failure);
  });

  test('trailers are read anywhere in a message (a squash merge moves them)', () => {
    expect(slipwayTrailers('Title (#3)\n\n* slipway: x\n\nSlipway-Release: release:a:1\nSlipway-Digest: sha256:ab  \n\nReviewed-on: http://x/pulls/3\n')).toEqual({ 'Slipway-Release': 'release:a:1', 'Slipway-Digest': 'sha256:ab' });
  });
});

