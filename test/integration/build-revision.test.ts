/**
 * A build given a gitSha builds exactly that commit: two revisions of a repository whose Dockerfile and content
 * differ, built at the same time while the worktree holds a third, uncommitted state, each give an image whose
 * revision label is the full commit id and whose content is that commit's. An unknown sha is refused before anything
 * is built. Without a gitSha the worktree is built as it is and its HEAD and dirtiness are recorded.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { createBuilderActivities } from '../../activities';
import { DockerImageBuilder } from '../../activities/docker/builder';
import type { BuildRequest } from '../../activities/ports';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import type { BuildImageInput, BuildImageResult } from '../../model/types';
import { dockerFromEnv } from '../../workers/builder';
import { scratchDir } from '../processes';
import { testStack } from '../setup/stack-info';

const stack = testStack();
const docker = dockerFromEnv({ DOCKER_HOST: stack.docker });
const run = promisify(execFile);
const repo = scratchDir('revision');
const git = (...args: string[]) => execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { encoding: 'utf8' }).trim();
const write = (rel: string, text: string) => {
  mkdirSync(join(repo, rel, '..'), { recursive: true });
  writeFileSync(join(repo, rel), text);
};

const commit = (variant: string, extraStep: string): string => {
  write('app/Dockerfile', `FROM slipway/busybox:local\nCOPY content.txt /content.txt\n${extraStep}\n`);
  write('app/content.txt', `${variant}\n`);
  git('add', '-A');
  git('commit', '-q', '-m', variant);
  return git('rev-parse', 'HEAD');
};

git('init', '-q');
const first = commit('one', 'LABEL variant=one');
const second = commit('two', 'RUN echo two > /built-by-step');
// The worktree holds a third state that no exact build may see.
write('app/content.txt', 'uncommitted\n');
write('app/untracked.txt', 'x');

const contexts: string[] = [];
const inner = new DockerImageBuilder(docker, new EnvCredentialStore({}, '/nonexistent'));
const builder = {
  build: (req: BuildRequest, progress: (d: Record<string, unknown>) => void) => {
    contexts.push(req.contextDir);
    return inner.build(req, progress);
  },
  push: inner.push.bind(inner),
};
const acts = createBuilderActivities({ builder, hostId: 'revision-host', workspace: repo });
const repoName = `127.0.0.1:5000/revision-${randomBytes(4).toString('hex')}`;
const input = (tag: string, gitSha?: string): BuildImageInput => ({
  service: 'revision',
  version: 'v1.0.0',
  created: '2026-01-01T00:00:00Z',
  context: 'app',
  dockerfile: 'Dockerfile',
  args: {},
  tag: `${repoName}:${tag}`,
  ...(gitSha ? { gitSha } : {}),
});
const build = (i: BuildImageInput) => new MockActivityEnvironment().run(acts.buildImage, i) as Promise<BuildImageResult>;
const fileIn = async (tag: string, path: string) => (await run('docker', ['run', '--rm', tag, 'cat', path], { env: { ...process.env, DOCKER_HOST: stack.docker } })).stdout;
const labels = async (tag: string) => (await docker.getImage(tag).inspect()).Config.Labels ?? {};

afterAll(async () => {
  for (const t of ['one', 'two', 'worktree', 'unknown']) await docker.getImage(`${repoName}:${t}`).remove({ force: true }).catch(() => undefined);
});

test('two revisions built at the same time each get their own commit, labelled with its full id', async () => {
  const [a, b] = await Promise.all([build(input('one', first.slice(0, 7))), build(input('two', second.slice(0, 10)))]);
  expect(a).toMatchObject({ revision: first });
  expect(b).toMatchObject({ revision: second });
  expect(a).not.toHaveProperty('dirty');
  expect(await labels(`${repoName}:one`)).toMatchObject({ 'org.opencontainers.image.revision': first, variant: 'one' });
  expect(await labels(`${repoName}:two`)).toMatchObject({ 'org.opencontainers.image.revision': second });
  expect(await labels(`${repoName}:two`)).not.toHaveProperty('variant');
  expect(await fileIn(`${repoName}:one`, '/content.txt')).toBe('one\n');
  expect(await fileIn(`${repoName}:two`, '/content.txt')).toBe('two\n');
  expect(await fileIn(`${repoName}:two`, '/built-by-step')).toBe('two\n');
  // Each build had a directory of its own, and it is gone.
  expect(new Set(contexts).size).toBe(2);
  expect(contexts.filter(existsSync)).toEqual([]);
});

test('an unknown gitSha is refused, naming gitSha, before anything is built', async () => {
  contexts.length = 0;
  await expect(build(input('unknown', '0000000'))).rejects.toMatchObject({
    type: 'InvalidInputError',
    nonRetryable: true,
    message: expect.stringMatching(/^gitSha "0000000" does not name a commit/),
  });
  expect(contexts).toEqual([]);
  await expect(docker.getImage(`${repoName}:unknown`).inspect()).rejects.toMatchObject({ statusCode: 404 });
});

test('without a gitSha the worktree is built as it is, and its HEAD and dirtiness are recorded', async () => {
  const r = await build(input('worktree'));
  expect(r).toMatchObject({ revision: second, dirty: true });
  expect(await fileIn(`${repoName}:worktree`, '/content.txt')).toBe('uncommitted\n');
  // Not the exact commit: no revision label claims it is.
  expect(await labels(`${repoName}:worktree`)).not.toHaveProperty(['org.opencontainers.image.revision']);
});
