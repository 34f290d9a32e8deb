/**
 * The environment repository through the `git` CLI (execFile-style argument arrays via runTool, never a shell).
 *
 * Credentials: the token reaches git only through its environment — GIT_CONFIG_COUNT/KEY/VALUE set
 * `http.<origin>/.extraHeader: Authorization: Basic …` for this remote's origin alone — so it is neither in the URL
 * (which is logged and recorded) nor in argv (which `ps` shows to every user). Basic `x-access-token:<token>` is
 * what GitHub expects for app and personal tokens; Gitea and Azure Repos accept any user name with a token.
 *
 * Every operation works in a fresh temporary clone (fetching only the target and the release's own branches) that
 * is removed afterwards, so concurrent activities on one worker never share a work tree. Idempotency comes from
 * the trailers: each call first looks for its own commit on the target branch and on its release branch.
 */
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { GitopsFormat } from '../../model/gitops';
import { runTool, tail, type ToolRun } from '../exec';
import { editFile, fileFor } from './edit';
import { gitopsError, type GitopsFailure } from './errors';
import type { EnvironmentRepository, PreparedChange, ReleaseChange, RevertResult } from './ports';

export interface GitRepositoryOptions {
  url: string;
  branch: string;
  /** repository.path of the delivery section (kustomize: the overlay directory or its kustomization file). */
  path: string;
  format: GitopsFormat;
  /** The token (read by the factory from the workers' environment variable forge.tokenEnv); none for file:// tests. */
  token?: string;
  git?: string;
  /** Where temporary clones go (default: the OS temp dir). */
  workRoot?: string;
  author?: { name: string; email: string };
  timeoutMs?: number;
}

export const TRAILER = { release: 'Slipway-Release', environment: 'Slipway-Environment', digest: 'Slipway-Digest', revertOf: 'Slipway-Revert-Of' } as const;

/** A workflow id (release:delivery:v1.0.2) as a ref component: ":" and other characters git refuses become "-". */
export function refSafe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/\.{2,}/g, '.').replace(/^[.-]+|[.-]+$/g, '').replace(/\.lock$/, '-lock') || 'release';
}
export const releaseBranch = (workflowId: string, environment: string) => `slipway/${refSafe(environment)}/${refSafe(workflowId)}`;
export const revertBranch = (workflowId: string, environment: string) => `slipway-revert/${refSafe(environment)}/${refSafe(workflowId)}`;

interface Commit {
  sha: string;
  parents: string[];
  subject: string;
  trailers: Record<string, string>;
}

/** Slipway's trailers anywhere in a message: a squash merge may move them out of the last paragraph. */
export function slipwayTrailers(message: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of message.matchAll(/^(Slipway-[A-Za-z-]+):[ \t]*(\S.*?)\s*$/gm)) out[m[1]] ??= m[2];
  return out;
}

/** git's stderr → what failed. The messages are git's own (remote-curl, transport, push). */
export function gitFailure(stderr: string): GitopsFailure {
  if (/returned error: (401|403)|Authentication failed|could not read (Username|Password)|terminal prompts disabled|Permission denied|HTTP Basic: Access denied/i.test(stderr)) return 'auth';
  if (/Could not resolve host|Failed to connect|Connection refused|Connection timed out|Operation timed out|Couldn't connect|returned error: (5\d\d|408|429)|early EOF|the remote end hung up unexpectedly|Empty reply|SSL_ERROR|gnutls_handshake/i.test(stderr)) return 'unreachable';
  if (/Repository not found|returned error: 404|does not appear to be a git repository|not found/i.test(stderr)) return 'not-found';
  if (/CONFLICT|could not revert|could not apply|merge conflict/i.test(stderr)) return 'merge-conflict';
  return 'rejected';
}

const NON_FAST_FORWARD = /\[rejected\]|non-fast-forward|fetch first|stale info|\[remote rejected\].*(cannot lock ref|failed to update ref)/i;

export class GitEnvironmentRepository implements EnvironmentRepository {
  private readonly file: string;
  private readonly git: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly opts: GitRepositoryOptions) {
    this.file = fileFor(opts.format, opts.path);
    this.git = opts.git ?? 'git';
    this.env = gitEnv(opts.url, opts.token);
  }

  async applyChange(change: ReleaseChange, to: 'direct' | 'branch'): Promise<PreparedChange> {
    const branch = releaseBranch(change.workflowId, change.environment);
    return this.withClone([branch], async (ws) => {
      for (let attempt = 1; ; attempt++) {
        const landed = (await ws.log('target')).find((c) => ours(c, change.workflowId, change.environment) && c.trailers[TRAILER.digest] === change.digest);
        if (landed) return { state: 'landed', branch: this.opts.branch, commit: landed.sha, base: ws.target, reused: true };
        const existing = ws.heads.get(branch);
        if (to === 'branch' && existing) {
          const [tip] = await ws.log('extra0', 1);
          if (tip && ours(tip, change.workflowId, change.environment) && tip.trailers[TRAILER.digest] === change.digest) return { state: 'branch', branch, commit: tip.sha, base: ws.target, reused: true };
        }
        await ws.run(['checkout', '-q', '--detach', 'refs/remotes/origin/target']);
        const text = await readFile(join(ws.dir, this.file), 'utf8').catch(() => {
          throw gitopsError('not-found', this.opts.url, `branch ${this.opts.branch} has no file ${this.file}`, { file: this.file, branch: this.opts.branch });
        });
        const edit = editFile(this.opts.format, text, { repository: change.repository, digest: change.digest, tag: change.version }, { repository: this.opts.url, file: this.file });
        if (!edit.changed) return { state: 'unchanged', branch: this.opts.branch, base: ws.target, reused: false, previousDigest: edit.previousDigest };
        await writeFile(join(ws.dir, this.file), edit.text);
        const message = [
          `slipway: ${change.service} ${change.version} to ${change.environment}`,
          '',
          `Pins ${change.repository}@${change.digest} in ${this.file}.`,
          '',
          `${TRAILER.release}: ${change.workflowId}`,
          `${TRAILER.environment}: ${change.environment}`,
          `${TRAILER.digest}: ${change.digest}`,
        ].join('\n');
        const commit = await ws.commit([this.file], message);
        const pushed = await ws.push(commit, to === 'direct' ? this.opts.branch : branch, to === 'direct' ? ws.target : (existing ?? ''));
        if (pushed) return { state: to === 'direct' ? 'landed' : 'branch', branch: to === 'direct' ? this.opts.branch : branch, commit, base: ws.target, reused: false, previousDigest: edit.previousDigest };
        // The branch moved between our fetch and push: fetch again and redo the edit on its new tip.
        if (attempt >= 3) throw gitopsError('merge-conflict', this.opts.url, `${to === 'direct' ? this.opts.branch : branch} kept moving while the change was pushed (3 attempts)`);
        await ws.refresh();
      }
    });
  }

  async findChange(workflowId: string, environment: string, digest?: string) {
    const branch = releaseBranch(workflowId, environment);
    return this.withClone([branch], async (ws) => {
      const match = (c: Commit) => ours(c, workflowId, environment) && (!digest || c.trailers[TRAILER.digest] === digest);
      const onTarget = (await ws.log('target')).find(match);
      if (onTarget) return { where: 'target' as const, commit: onTarget.sha, digest: onTarget.trailers[TRAILER.digest] };
      if (!ws.heads.has(branch)) return undefined;
      const [tip] = await ws.log('extra0', 1);
      return tip && match(tip) ? { where: 'branch' as const, commit: tip.sha, digest: tip.trailers[TRAILER.digest] } : undefined;
    });
  }

  async revertChange(workflowId: string, environment: string, to: 'direct' | 'branch'): Promise<RevertResult> {
    const branch = revertBranch(workflowId, environment);
    return this.withClone([branch], async (ws) => {
      for (let attempt = 1; ; attempt++) {
        const history = await ws.log('target');
        const change = history.find((c) => ours(c, workflowId, environment) && c.parents.length === 1);
        if (!change) return { state: 'nothing', branch: this.opts.branch, base: ws.target, reused: false };
        const done = history.find((c) => c.trailers[TRAILER.revertOf] === change.sha);
        if (done) return { state: 'landed', branch: this.opts.branch, commit: done.sha, base: ws.target, reused: true, reverts: change.sha };
        const existing = ws.heads.get(branch);
        if (to === 'branch' && existing) {
          const [tip] = await ws.log('extra0', 1);
          if (tip?.trailers[TRAILER.revertOf] === change.sha) return { state: 'branch', branch, commit: tip.sha, base: ws.target, reused: true, reverts: change.sha };
        }
        await ws.run(['checkout', '-q', '--detach', 'refs/remotes/origin/target']);
        const reverted = await ws.tool(['revert', '--no-commit', change.sha]);
        if (reverted.code !== 0) {
          throw gitopsError(gitFailure(reverted.stderr) === 'merge-conflict' ? 'merge-conflict' : 'rejected', this.opts.url, `reverting ${change.sha.slice(0, 12)} (${change.subject}) on ${this.opts.branch}: ${tail(reverted.stderr, 3)}`, { commit: change.sha });
        }
        if ((await ws.tool(['diff', '--cached', '--quiet'])).code === 0) return { state: 'unchanged', branch: this.opts.branch, base: ws.target, reused: false, reverts: change.sha };
        const message = [
          `Revert "${change.subject}"`,
          '',
          `This reverts commit ${change.sha}.`,
          '',
          `${TRAILER.release}: ${workflowId}`,
          `${TRAILER.environment}: ${environment}`,
          `${TRAILER.revertOf}: ${change.sha}`,
        ].join('\n');
        const commit = await ws.commit([], message);
        const pushed = await ws.push(commit, to === 'direct' ? this.opts.branch : branch, to === 'direct' ? ws.target : (existing ?? ''));
        if (pushed) return { state: to === 'direct' ? 'landed' : 'branch', branch: to === 'direct' ? this.opts.branch : branch, commit, base: ws.target, reused: false, reverts: change.sha };
        if (attempt >= 3) throw gitopsError('merge-conflict', this.opts.url, `${this.opts.branch} kept moving while the revert was pushed (3 attempts)`);
        await ws.refresh();
      }
    });
  }

  /** A fresh clone holding the target branch (refs/remotes/origin/target) and the named extra branches that exist. */
  private async withClone<T>(extra: string[], fn: (ws: Workspace) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(join(this.opts.workRoot ?? tmpdir(), 'slipway-gitops-'));
    try {
      const ws = new Workspace(this.git, dir, this.opts, this.env, extra);
      await ws.run(['init', '-q', dir], false);
      await ws.refresh();
      return await fn(ws);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

const ours = (c: Commit, workflowId: string, environment: string) =>
  c.trailers[TRAILER.release] === workflowId && c.trailers[TRAILER.environment] === environment && !c.trailers[TRAILER.revertOf];

/** git's environment: no prompts, no user or system config, the token as an extra header for this origin only. */
export function gitEnv(url: string, token?: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C', LC_ALL: 'C', GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_ASKPASS: '', SSH_ASKPASS: '' };
  if (!token || !/^https?:/.test(url)) return env;
  const origin = new URL(url).origin;
  return {
    ...env,
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: `http.${origin}/.extraHeader`,
    GIT_CONFIG_VALUE_0: `Authorization: Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`,
  };
}

class Workspace {
  /** Remote branch → sha, from ls-remote. */
  heads = new Map<string, string>();
  target = '';

  constructor(
    private readonly git: string,
    readonly dir: string,
    private readonly opts: GitRepositoryOptions,
    private readonly env: NodeJS.ProcessEnv,
    private readonly extra: string[],
  ) {}

  tool(args: string[], inDir = true): Promise<ToolRun> {
    return runTool(this.git, inDir ? ['-C', this.dir, ...args] : args, { env: this.env, timeoutMs: this.opts.timeoutMs ?? 120_000 });
  }

  async run(args: string[], inDir = true): Promise<string> {
    const r = await this.tool(args, inDir);
    if (r.code !== 0) {
      const why = r.timedOut ? 'timed out' : tail(r.stderr, 3) || `exit ${r.code}`;
      throw gitopsError(r.timedOut ? 'unreachable' : gitFailure(r.stderr), this.opts.url, `git ${args[0]}: ${why}`);
    }
    return r.stdout;
  }

  /** ls-remote, then fetch the target branch and those extra branches that exist. */
  async refresh(): Promise<void> {
    const refs = [this.opts.branch, ...this.extra].map((b) => `refs/heads/${b}`);
    const listed = await this.run(['ls-remote', '--heads', this.opts.url, ...refs]);
    this.heads = new Map(listed.split('\n').filter(Boolean).map((l) => {
      const [sha, ref] = l.split('\t');
      return [ref.replace(/^refs\/heads\//, ''), sha] as [string, string];
    }));
    const target = this.heads.get(this.opts.branch);
    if (!target) throw gitopsError('branch-missing', this.opts.url, `has no branch ${this.opts.branch}`, { branch: this.opts.branch });
    this.target = target;
    const specs = [`+refs/heads/${this.opts.branch}:refs/remotes/origin/target`, ...this.extra.map((b, i) => (this.heads.has(b) ? `+refs/heads/${b}:refs/remotes/origin/extra${i}` : '')).filter(Boolean)];
    await this.run(['fetch', '-q', '--no-tags', this.opts.url, ...specs]);
  }

  /** Newest first, at most `max` commits of refs/remotes/origin/<ref>. */
  async log(ref: string, max = 500): Promise<Commit[]> {
    const out = await this.run(['log', `-n${max}`, '--format=%H%x1f%P%x1f%s%x1f%B%x1e', `refs/remotes/origin/${ref}`, '--']);
    return out.split('\x1e').map((r) => r.replace(/^\n/, '')).filter(Boolean).map((r) => {
      const [sha, parents, subject, body] = r.split('\x1f');
      return { sha, parents: parents.split(' ').filter(Boolean), subject, trailers: slipwayTrailers(body ?? '') };
    });
  }

  async commit(files: string[], message: string): Promise<string> {
    if (files.length) {
      await mkdir(dirname(join(this.dir, files[0])), { recursive: true });
      await this.run(['add', '--', ...files]);
    }
    const author = this.opts.author ?? { name: 'Slipway', email: 'slipway@localhost' };
    await this.run(['-c', `user.name=${author.name}`, '-c', `user.email=${author.email}`, 'commit', '-q', '--no-verify', '-m', message]);
    return (await this.run(['rev-parse', 'HEAD'])).trim();
  }

  /** Pushes `commit` to `branch` if it still points at `expected` ('' = must not exist); false when it moved. */
  async push(commit: string, branch: string, expected: string): Promise<boolean> {
    const r = await this.tool(['push', '--porcelain', `--force-with-lease=refs/heads/${branch}:${expected}`, this.opts.url, `${commit}:refs/heads/${branch}`]);
    if (r.code === 0) return true;
    const text = `${r.stdout}\n${r.stderr}`;
    if (NON_FAST_FORWARD.test(text) && gitFailure(r.stderr) !== 'auth') return false;
    throw gitopsError(r.timedOut ? 'unreachable' : gitFailure(r.stderr), this.opts.url, `git push to ${branch}: ${tail(r.stderr, 3) || tail(r.stdout, 3)}`, { branch });
  }
}
