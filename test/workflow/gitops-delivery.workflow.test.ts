/**
 * GitOps delivery in the release workflow (issue #13) on the dev server with mocked activities: a direct commit to
 * QA's repository, a pull request to prod merged by a person (the webhook's Update wakes the wait; without one the
 * poll finds the merge), auto-merge, a pull request closed unmerged (the release is rejected and QA's commit
 * reverted), and a Flux failure (the release fails with Flux's reason and the change is reverted).
 */
import { ApplicationFailure } from '@temporalio/common';
import { noopActivities } from '../../bench/noop-worker';
import type { GitopsActivities, SlipwayActivities } from '../../activities/contract';
import type { PullRequestStatus } from '../../activities/gitops/ports';
import { parseConfig, planRelease } from '../../model/plan';
import type { SlipwayClient } from '../../client/client';
import { gitopsPullRequestChangedUpdate } from '../../workflows/messages';
import { outcomeOf, startHarness, uniqueVersion, type Harness } from '../helpers';

const NS = 'slipway-test';
const DIGEST = `sha256:${'f'.repeat(64)}`;
const QA_COMMIT = 'a'.repeat(40);
const PR_HEAD = 'b'.repeat(40);
const BASE = 'c'.repeat(40);
const MERGE_COMMIT = 'd'.repeat(40);
const REVERT_COMMIT = 'e'.repeat(40);
const PR_URL = 'https://git.example.com/team/env-prod/pulls/7';

const calls: string[] = [];
let prState: 'open' | 'merged' | 'closed' = 'open';
let fluxFailsFor: string | undefined;
/** Who has approved the open pull request so far. */
let reviewers: string[] = [];

const pr = (): PullRequestStatus => ({
  number: 7,
  url: PR_URL,
  state: prState,
  title: 'delivery to prod',
  head: { branch: 'slipway/prod/release', sha: PR_HEAD },
  base: 'main',
  ...(prState === 'merged' ? { mergeCommit: MERGE_COMMIT, mergedBy: 'alice', mergedAt: '2026-12-01T08:00:00Z' } : {}),
  reviews: [],
  approvedBy: prState === 'merged' ? ['bob'] : reviewers,
});

const gitops: GitopsActivities = {
  async gitopsApplyChange(i) {
    calls.push(`apply:${i.change.environment}:${i.to}`);
    expect(i.change.digest).toBe(DIGEST);
    // Only the variable's name travels; never a token.
    expect(JSON.stringify(i)).not.toMatch(/secret-token/);
    return i.to === 'direct'
      ? { state: 'landed', branch: 'main', commit: QA_COMMIT, base: BASE, reused: false }
      : { state: 'branch', branch: `slipway/${i.change.environment}/release`, commit: PR_HEAD, base: BASE, reused: false };
  },
  async gitopsOpenPullRequest(i) {
    calls.push(`open:${i.head}`);
    return { ...pr(), state: 'open' };
  },
  async gitopsPullRequestStatus(i) {
    calls.push(`status:${i.number}:${prState}`);
    return pr();
  },
  async gitopsMergePullRequest(i) {
    calls.push(`merge:${i.number}:${i.sha?.slice(0, 1)}`);
    prState = 'merged';
    return pr();
  },
  async gitopsRevertChange(i) {
    calls.push(`revert:${i.environment}:${i.to}`);
    // A pull request that never merged left nothing on the target branch to revert.
    if (i.environment === 'prod' && prState !== 'merged') return { state: 'nothing', branch: 'main', base: BASE, reused: false };
    return { state: 'landed', branch: 'main', commit: REVERT_COMMIT, base: QA_COMMIT, reused: false, reverts: QA_COMMIT };
  },
  async waitFluxApplied(i) {
    calls.push(`flux:${i.target.namespace}:${i.commit.slice(0, 1)}`);
    if (i.commit === fluxFailsFor) {
      throw ApplicationFailure.create({ type: 'FluxApplyFailedError', nonRetryable: true, message: `Flux could not apply ${i.commit} (Kustomization flux-system/delivery): Ready=False (HealthCheckFailed): Deployment/wf/delivery not ready` });
    }
    return { revision: `main@sha1:${i.commit}`, waitedMs: 1, requestedAt: '2026-12-01T08:00:00Z' };
  },
};

const acts: SlipwayActivities & GitopsActivities = {
  ...noopActivities(DIGEST, 'gitops-wf-host'),
  ...gitops,
  async smokeTest(i) {
    calls.push(`smoke:${i.environment}:${i.check.type}`);
    return { check: i.check.type, detail: 'ok', durationMs: 1 };
  },
};

export const gitopsConfigText = (prodMerge: 'pull-request' | 'auto-merge', reviews = false) => `
registries:
  dev: { type: oci, url: "127.0.0.1:5000", insecure: true }
environments:
  qa:
    registry: dev
    kubeContext: kind-qa
    namespace: wf-qa
    deploy: { timeout: 60s, smoke: [ { type: rollout } ] }
    delivery:
      type: gitops
      repository: { url: "https://git.example.com/team/env-qa.git", path: overlays/qa }
      format: kustomize
      merge: direct
      forge: { type: gitea, tokenEnv: GITEA_TOKEN }
      flux: { gitRepository: env-qa, kustomization: delivery }
  prod:
    registry: dev
    imagePrefix: prod/
    kubeContext: kind-prod
    namespace: wf
    deploy: { timeout: 60s, smoke: [ { type: rollout } ] }
    delivery:
      type: gitops
      repository: { url: "https://git.example.com/team/env-prod.git", path: overlays/prod }
      format: kustomize
      merge: ${prodMerge}
      forge: { type: gitea, tokenEnv: GITEA_TOKEN }
      flux: { gitRepository: env-prod, kustomization: delivery }
${reviews ? '      approvals: { fromReviews: true, count: 1 }\n    approval: { approvers: [alice] }\n' : ''}identity: { issuers: [ { name: ui } ], local: true }
services:
  delivery:
    build: { context: services/delivery, args: { VERSION: test } }
`;

let slipway: SlipwayClient;
let harness: Harness;
beforeAll(async () => {
  harness = await startHarness(NS, acts, 'gitops-wf-host');
  slipway = harness.slipway;
});
afterAll(() => harness.stop());
beforeEach(() => {
  calls.length = 0;
  prState = 'open';
  fluxFailsFor = undefined;
  reviewers = [];
});

const input = (merge: 'pull-request' | 'auto-merge' = 'pull-request', reviews = false) => planRelease(parseConfig(gitopsConfigText(merge, reviews)), { service: 'delivery', version: uniqueVersion(), requester: 'ci-bot' });

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
/** Until the workflow waits on the pull request and has read it once (so the test's change is seen by a later read). */
const awaitingMerge = (id: string) =>
  until('the pull request wait', async () => calls.includes('status:7:open') && (await slipway.status(id)).gitops?.prod?.state === 'awaiting-merge');
/** An Update's refusal reaches the client as "Workflow Update failed" caused by the validator's failure. */
const refusal = (p: Promise<unknown>) => p.then(() => 'accepted', (err: { cause?: { message?: string } }) => err.cause?.message ?? String(err));
const nudge = (id: string, environment: string, number: number) => slipway.handle(id).executeUpdate(gitopsPullRequestChangedUpdate, { args: [{ environment, number }] });

test('QA commits directly and waits for Flux; prod opens a pull request, whose merge (announced by the Update) is re-read, applied and recorded', async () => {
  const { workflowId } = await slipway.start(input());
  await awaitingMerge(workflowId);
  let s = await slipway.status(workflowId);
  expect(s.gitops?.prod).toMatchObject({ state: 'awaiting-merge', merge: 'pull-request', pullRequest: { number: 7, url: PR_URL, state: 'open' } });
  expect(s.stages.find((x) => x.id === 'deploy:prod')?.state).toBe('waiting');
  // The Update is refused (no event) for another pull request or environment.
  expect(await refusal(nudge(workflowId, 'prod', 8))).toMatch(/not waiting for pull request #8 in prod/);
  expect(await refusal(nudge(workflowId, 'qa', 7))).toMatch(/not waiting for pull request #7 in qa/);

  prState = 'merged';
  const sent = Date.now();
  await expect(nudge(workflowId, 'prod', 7)).resolves.toEqual({ accepted: true });
  const out = await outcomeOf(slipway, workflowId);
  expect(out.type).toBeUndefined();
  // Woken by the Update, not by the 30 s poll.
  expect(Date.now() - sent).toBeLessThan(15_000);
  s = out.status;
  expect(s.phase).toBe('succeeded');
  expect(calls).toEqual([
    'apply:qa:direct',
    'flux:wf-qa:a',
    'smoke:qa:rollout',
    'apply:prod:branch',
    'open:slipway/prod/release',
    'status:7:open',
    'status:7:merged',
    'flux:wf:d',
    'smoke:prod:rollout',
  ]);
  expect(s.gitops?.qa).toMatchObject({ state: 'applied', commit: QA_COMMIT, appliedRevision: `main@sha1:${QA_COMMIT}` });
  expect(s.gitops?.prod).toMatchObject({ state: 'applied', commit: MERGE_COMMIT, pullRequest: { state: 'merged', mergeCommit: MERGE_COMMIT, mergedBy: 'alice', approvedBy: ['bob'] } });
  expect(s.stages.find((x) => x.id === 'deploy:prod')).toMatchObject({ state: 'succeeded', result: { pullRequest: PR_URL, mergedBy: 'alice', mergeCommit: MERGE_COMMIT, applied: `main@sha1:${MERGE_COMMIT}` } });
  expect(s.approvals).toEqual([{ environment: 'prod', approver: 'alice', decision: 'approved', comment: `merged ${PR_URL} as ${MERGE_COMMIT}`, at: expect.any(String) }]);
});

test('without a webhook, the poll finds the merge', async () => {
  const { workflowId } = await slipway.start(input());
  await awaitingMerge(workflowId);
  prState = 'merged';
  const out = await outcomeOf(slipway, workflowId);
  expect(out.status.phase).toBe('succeeded');
  expect(calls.filter((c) => c.startsWith('status:'))).toEqual(['status:7:open', 'status:7:merged']);
  expect(out.status.gitops?.prod.pullRequest).toMatchObject({ state: 'merged', mergedBy: 'alice' });
}, 90_000);

test('auto-merge merges the open pull request (guarded by its head commit) and waits for Flux', async () => {
  const { workflowId } = await slipway.start(input('auto-merge'));
  const out = await outcomeOf(slipway, workflowId);
  expect(out.status.phase).toBe('succeeded');
  expect(calls.slice(3)).toEqual(['apply:prod:branch', 'open:slipway/prod/release', 'status:7:open', 'merge:7:b', 'flux:wf:d', 'smoke:prod:rollout']);
});

test('approvals from reviews: no Slipway gate; auto-merge waits for an approving review, which is recorded with the merge', async () => {
  const { workflowId } = await slipway.start(input('auto-merge', true));
  await awaitingMerge(workflowId);
  expect(calls).not.toContain('merge:7:b');
  reviewers = ['bob'];
  await nudge(workflowId, 'prod', 7);
  const out = await outcomeOf(slipway, workflowId);
  expect(out.status.phase).toBe('succeeded');
  expect(calls.filter((c) => c.startsWith('status:') || c.startsWith('merge:'))).toEqual(['status:7:open', 'status:7:open', 'merge:7:b']);
  expect(out.status.stages.find((x) => x.id === 'approval:prod')).toMatchObject({ state: 'skipped', result: { note: "the pull request's approving reviews decide" } });
  expect(out.status.approvals.map((a) => `${a.approver}: ${a.comment}`)).toEqual([`bob: approving review on ${PR_URL}`, `alice: merged ${PR_URL} as ${MERGE_COMMIT}`]);
});

test('a pull request closed without a merge rejects the release, and QA’s commit is reverted and applied', async () => {
  const { workflowId } = await slipway.start(input());
  await awaitingMerge(workflowId);
  prState = 'closed';
  await nudge(workflowId, 'prod', 7);
  const out = await outcomeOf(slipway, workflowId);
  expect(out.type).toBe('PullRequestClosedError');
  expect(out.message).toContain(`pull request ${PR_URL} was closed without being merged`);
  expect(out.status.phase).toBe('rejected');
  // Newest first: prod's change never landed (nothing to revert, nothing for Flux), QA's commit is reverted and applied.
  expect(calls.slice(-4)).toEqual(['status:7:closed', 'revert:prod:branch', 'revert:qa:direct', 'flux:wf-qa:e']);
  expect(out.status.stages.find((x) => x.id === 'rollback:prod')).toMatchObject({ state: 'succeeded', result: { action: 'nothing-to-revert' } });
  expect(out.status.gitops?.qa).toMatchObject({ state: 'reverted', revert: { commit: REVERT_COMMIT } });
  expect(out.status.stages.find((x) => x.id === 'rollback:qa')).toMatchObject({ state: 'succeeded', result: { action: 'reverted', reverts: QA_COMMIT } });
});

test('a Flux failure fails the release with Flux’s reason and reverts the change', async () => {
  fluxFailsFor = QA_COMMIT;
  const { workflowId } = await slipway.start(input());
  const out = await outcomeOf(slipway, workflowId);
  expect(out.type).toBe('FluxApplyFailedError');
  expect(out.message).toContain('Ready=False (HealthCheckFailed): Deployment/wf/delivery not ready');
  expect(out.status.phase).toBe('failed');
  expect(calls).toEqual(['apply:qa:direct', 'flux:wf-qa:a', 'revert:qa:direct', 'flux:wf-qa:e']);
  expect(out.status.gitops?.qa.state).toBe('reverted');
});
