/**
 * Where a build reads its context from. With a gitSha, the exact commit: the context's files at that revision,
 * exported (`git archive`) into a directory of the build's own, so concurrent builds of different revisions cannot
 * see each other's files or the workspace's uncommitted changes. Without one, the workspace as it is, with its HEAD
 * and whether it had uncommitted changes recorded.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { ErrorTypes } from '../../model/errors';
import { portError } from '../errors';
import { cancellation, runTool, tail, toolBinary } from '../exec';

export interface BuildSource {
  /** The directory build paths (context, Dockerfile) are resolved inside. */
  root: string;
  /** The full commit id: the resolved gitSha, or the workspace's HEAD (absent outside a git repository). */
  revision?: string;
  /** True when `root` holds exactly `revision` (a gitSha was given). */
  exact: boolean;
  /** Only for workspace builds: whether the workspace had uncommitted or untracked changes. */
  dirty?: boolean;
  /** Removes the exported tree; a no-op for workspace builds. */
  cleanup(): Promise<void>;
}

const GIT_TIMEOUT_MS = 120_000;

async function git(args: string[], cwd: string): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  // -C instead of cwd: runTool takes no cwd, and git resolves every path against -C.
  const run = await runTool(toolBinary('git', process.env.SLIPWAY_GIT_BIN), ['-C', cwd, ...args], {
    env: { ...process.env, GIT_TERMINAL_PROMPT: '0' },
    timeoutMs: GIT_TIMEOUT_MS,
  });
  if (run.cancelled) throw cancellation(`git ${args[0]}`);
  return { ok: run.code === 0 && !run.timedOut, stdout: run.stdout.trim(), stderr: run.stderr };
}

const refuse = (message: string) => portError(ErrorTypes.InvalidInput, message);

/**
 * The build's source. `paths` are the workspace-relative paths the build reads (its context): only they are exported.
 * Throws a non-retryable InvalidInputError naming gitSha when it does not resolve to a commit.
 */
export async function prepareBuildSource(workspace: string, gitSha: string | undefined, paths: string[]): Promise<BuildSource> {
  const top = await git(['rev-parse', '--show-toplevel'], workspace);
  if (gitSha === undefined) {
    if (!top.ok) return { root: workspace, exact: false, cleanup: async () => undefined };
    const head = await git(['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], workspace);
    // Untracked files count: the Docker context sends them too.
    const status = await git(['status', '--porcelain', '--untracked-files=normal', '--', '.'], workspace);
    return {
      root: workspace,
      exact: false,
      ...(head.ok && head.stdout ? { revision: head.stdout } : {}),
      ...(status.ok ? { dirty: status.stdout.length > 0 } : {}),
      cleanup: async () => undefined,
    };
  }
  // The activity's schema checks this already; repeated here because the value reaches git's argv.
  if (!/^[0-9a-f]{7,40}$/.test(gitSha)) throw refuse(`gitSha "${gitSha}": must be 7 to 40 lower-case hex digits`);
  if (!top.ok) throw refuse(`gitSha "${gitSha}" was given but the build workspace ${workspace} is not a git repository: ${tail(top.stderr, 1)}`);
  const resolved = await git(['rev-parse', '--verify', '--quiet', `${gitSha}^{commit}`], workspace);
  if (!resolved.ok || !/^[0-9a-f]{40,64}$/.test(resolved.stdout)) {
    throw refuse(`gitSha "${gitSha}" does not name a commit in ${top.stdout} (unknown, ambiguous or not fetched): nothing was built`);
  }
  const revision = resolved.stdout;
  const prefix = (await git(['rev-parse', '--show-prefix'], workspace)).stdout;
  const dir = await mkdtemp(join(tmpdir(), 'slipway-build-'));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    const tree = join(dir, 'tree');
    const archive = join(dir, 'source.tar');
    await mkdir(tree);
    // Paths are given relative to the repository's top (the workspace may be a subdirectory of it).
    const pathspecs = paths.map((p) => posix.join(prefix, p).replace(/\/$/, '') || '.');
    const exported = await git(['archive', '--format=tar', '-o', archive, revision, '--', ...pathspecs], top.stdout);
    if (!exported.ok) throw refuse(`gitSha "${gitSha}" (${revision}) has no ${paths.join(', ')}: ${tail(exported.stderr, 2)}`);
    const unpacked = await runTool('tar', ['-x', '-f', archive, '-C', tree], { timeoutMs: GIT_TIMEOUT_MS });
    if (unpacked.cancelled) throw cancellation('unpacking the build source');
    if (unpacked.code !== 0) throw new Error(`unpacking the source of ${revision} failed: ${tail(unpacked.stderr, 2)}`);
    await rm(archive, { force: true });
    return { root: join(tree, prefix), revision, exact: true, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
