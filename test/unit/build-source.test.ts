/**
 * prepareBuildSource: a gitSha is exported (only the build's paths) into a directory of its own, from a workspace
 * that may be a subdirectory of the repository; an unknown or ambiguous sha, or a gitSha without a repository, is
 * refused naming gitSha; without a gitSha the workspace is used as it is, with HEAD and dirtiness.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepareBuildSource } from '../../activities/docker/source';
import { scratchDir } from '../processes';

const repo = scratchDir('source');
const git = (...args: string[]) => execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { encoding: 'utf8' }).trim();
const write = (rel: string, text: string) => {
  mkdirSync(join(repo, rel, '..'), { recursive: true });
  writeFileSync(join(repo, rel), text);
};
git('init', '-q');
write('svc/app/Dockerfile', 'FROM scratch\n');
write('svc/app/file.txt', 'one');
write('svc/other/secret.txt', 'not part of the build');
git('add', '-A');
git('commit', '-q', '-m', 'one');
const first = git('rev-parse', 'HEAD');
write('svc/app/file.txt', 'two');
git('commit', '-q', '-am', 'two');
const second = git('rev-parse', 'HEAD');
write('svc/app/file.txt', 'dirty');
const workspace = join(repo, 'svc');

test('each revision is exported into its own directory with only the build paths, removed by cleanup', async () => {
  const [a, b] = await Promise.all([prepareBuildSource(workspace, first.slice(0, 8), ['app']), prepareBuildSource(workspace, second, ['app'])]);
  expect(a).toMatchObject({ revision: first, exact: true });
  expect(b).toMatchObject({ revision: second, exact: true });
  expect(a.root).not.toBe(b.root);
  expect(readFileSync(join(a.root, 'app', 'file.txt'), 'utf8')).toBe('one');
  expect(readFileSync(join(b.root, 'app', 'file.txt'), 'utf8')).toBe('two');
  expect(existsSync(join(a.root, 'other'))).toBe(false);
  await Promise.all([a.cleanup(), b.cleanup()]);
  expect(existsSync(a.root) || existsSync(b.root)).toBe(false);
});

test('refusals name gitSha', async () => {
  await expect(prepareBuildSource(workspace, 'deadbeef', ['app'])).rejects.toMatchObject({ type: 'InvalidInputError', nonRetryable: true, message: expect.stringMatching(/^gitSha "deadbeef" does not name a commit/) });
  await expect(prepareBuildSource(workspace, '--output=x', ['app'])).rejects.toMatchObject({ message: expect.stringMatching(/^gitSha "--output=x": must be 7 to 40/) });
  await expect(prepareBuildSource(scratchDir('not-a-repo'), first, ['app'])).rejects.toMatchObject({ type: 'InvalidInputError', message: expect.stringMatching(/^gitSha ".*" was given but the build workspace .* is not a git repository/) });
  await expect(prepareBuildSource(workspace, first, ['missing'])).rejects.toMatchObject({ type: 'InvalidInputError', message: expect.stringContaining('has no missing') });
});

test('without a gitSha: the workspace itself, its HEAD and whether it is dirty', async () => {
  await expect(prepareBuildSource(workspace, undefined, ['app'])).resolves.toMatchObject({ root: workspace, revision: second, exact: false, dirty: true });
  git('checkout', '-q', '--', '.');
  await expect(prepareBuildSource(workspace, undefined, ['app'])).resolves.toMatchObject({ revision: second, dirty: false });
  const plain = scratchDir('plain');
  const s = await prepareBuildSource(plain, undefined, ['.']);
  expect(s).toEqual({ root: plain, exact: false, cleanup: expect.any(Function) });
});
