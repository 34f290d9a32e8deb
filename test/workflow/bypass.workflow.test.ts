/**
 * The bypass matrix against the workflow's Update validators, as an attacker with Temporal namespace access would
 * try it (raw Updates and starts, no UI in between). Every row names the rule it attacks; each is refused with its
 * reason, and the history shows no decision event for any of them. The UI's rows are in
 * test/integration/bypass-ui.test.ts, the token rules on their own in test/unit/decision-token.test.ts.
 */
import { generateKeyPairSync } from 'node:crypto';
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { DecisionSigner } from '../../client/identity/signer';
import { defaultKeyDir } from '../../host/keys';
import { noopActivities } from '../../bench/noop-worker';
import { abortSignal, abortUpdate, approveUpdate, rejectUpdate } from '../../workflows/messages';
import { ORCHESTRATOR_QUEUE } from '../../model/queues';
import { releaseWorkflowId } from '../../model/identifiers';
import type { DecisionClaims } from '../../model/decision-token';
import { ErrorTypes } from '../../model/errors';
import { plan, sampleConfigText, startHarness, uniqueVersion, type Harness, type TestSlipwayClient } from '../helpers';

const NS = 'slipway-test';
const DIGEST = `sha256:${'c'.repeat(64)}`;
const EventType = temporal.api.enums.v1.EventType;
const { workflowAccept: ACCEPTED } = { workflowAccept: EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED };

let harness: Harness;
let slipway: TestSlipwayClient;
const local = DecisionSigner.fromKeyDir(defaultKeyDir(), 'local', 'local');
const ui = DecisionSigner.fromKeyDir(defaultKeyDir(), 'ui', 'session');
const forger = new DecisionSigner('ui', generateKeyPairSync('ed25519').privateKey, 'session');
const unpinned = new DecisionSigner('github', generateKeyPairSync('ed25519').privateKey, 'oidc');

beforeAll(async () => {
  harness = await startHarness(NS, noopActivities(DIGEST, 'bypass-host'), 'bypass-host');
  slipway = harness.slipway as TestSlipwayClient;
});
afterAll(() => harness.stop());

const acceptedUpdates = async (id: string) => ((await slipway.handle(id).fetchHistory()).events ?? []).filter((e) => e.eventType === ACCEPTED).length;

/** Sends an Update as a raw Temporal client would; returns the refusal message (or throws if it was accepted). */
async function refusal(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) return (err.cause as Error | undefined)?.message ?? err.message;
    throw err;
  }
  throw new Error('accepted');
}

describe('approve / reject / abort Updates', () => {
  let id: string;
  let run: string;
  const claims = (o: Partial<DecisionClaims> = {}) => ({ sub: 'alice', rel: id, run, env: 'prod', dig: DIGEST, act: 'approve' as const, ...o });
  const approve = (args: object) => refusal(() => slipway.handle(id).executeUpdate(approveUpdate, { args: [args as never] }));

  beforeAll(async () => {
    const started = await slipway.start(plan({ requester: 'ci-bot', config: sampleConfigText({ approval: '{ approvers: [group:release-managers, dave, ci-bot], minApprovals: 2, requesterCannotApprove: true, timeout: 72h }' }) }));
    id = started.workflowId;
    run = started.runId;
    const { reached } = await slipway.waitFor(id, 'approval', { timeoutMs: 30_000, intervalMs: 100 });
    expect(reached).toBe(true);
  });

  const rows: { rule: string; attempt: () => Promise<string>; reason: RegExp }[] = [
    { rule: 'a raw Update without a token is refused', attempt: () => approve({ approver: 'alice' }), reason: /token is required/ },
    { rule: 'groups asserted beside no token count for nothing', attempt: () => approve({ approver: 'mallory', groups: ['release-managers'] }), reason: /token is required/ },
    { rule: 'a token signed by a key the release did not pin', attempt: () => approve({ token: forger.sign(claims()) }), reason: /does not verify/ },
    { rule: 'a token from an issuer the workers do not trust', attempt: () => approve({ token: unpinned.sign(claims()) }), reason: /not trusted/ },
    { rule: 'a token for another release', attempt: () => approve({ token: ui.sign(claims({ rel: 'release:delivery:v0.0.1' })) }), reason: /issued for release/ },
    { rule: 'a token for another run of this release', attempt: () => approve({ token: ui.sign(claims({ run: 'an-earlier-run' })) }), reason: /issued for run/ },
    { rule: 'a token for another environment', attempt: () => approve({ token: ui.sign(claims({ env: 'qa' })) }), reason: /environment "qa"/ },
    { rule: 'a decision naming another environment', attempt: () => approve({ token: ui.sign(claims()), environment: 'qa' }), reason: /awaits approval for "prod", not "qa"/ },
    { rule: 'a token for a stale digest', attempt: () => approve({ token: ui.sign(claims({ dig: `sha256:${'d'.repeat(64)}` })) }), reason: /issued for digest/ },
    { rule: 'a digest beside the token that differs from it', attempt: () => approve({ token: ui.sign(claims()), digest: `sha256:${'d'.repeat(64)}` }), reason: /digest: the request names/ },
    { rule: 'a reject token re-bound to approve', attempt: () => approve({ token: ui.sign(claims({ act: 'reject' })) }), reason: /issued for "reject"/ },
    { rule: 'an approve token re-bound to reject', attempt: () => refusal(() => slipway.handle(id).executeUpdate(rejectUpdate, { args: [{ token: ui.sign(claims({ sub: 'bob' })) }] })), reason: /issued for "approve"/ },
    { rule: 'an expired token', attempt: () => approve({ token: ui.sign(claims(), { iat: Math.floor(Date.now() / 1000) - 900, exp: Math.floor(Date.now() / 1000) - 600 }) }), reason: /expired/ },
    { rule: 'a token whose lifetime exceeds the configured one', attempt: () => approve({ token: ui.sign(claims(), { exp: Math.floor(Date.now() / 1000) + 7200 }) }), reason: /lifetime/ },
    { rule: 'an approver field that is not the token\'s subject', attempt: () => approve({ token: ui.sign(claims({ sub: 'mallory' })), approver: 'alice' }), reason: /the token is mallory's/ },
    { rule: 'a comment changed after signing', attempt: () => approve({ token: ui.sign(claims({ note: 'ok' })), comment: 'ok, and deploy my backdoor' }), reason: /comment/ },
    { rule: 'the requester approving their own release', attempt: () => approve({ token: local.sign(claims({ sub: 'ci-bot' })) }), reason: /forbids approving one's own/ },
    { rule: 'someone who is not an approver', attempt: () => approve({ token: ui.sign(claims({ sub: 'mallory' })) }), reason: /mallory is not an approver/ },
    { rule: 'groups in a self-asserted (local) token are ignored', attempt: () => approve({ token: local.sign(claims({ sub: 'mallory', groups: ['release-managers'] })) }), reason: /mallory is not an approver/ },
    { rule: 'a subject that is not normalised', attempt: () => approve({ token: ui.sign(claims(), { sub: 'Alice ' }) }), reason: /malformed/ },
    { rule: 'fields the request schema does not allow', attempt: () => approve({ token: ui.sign(claims()), role: 'admin' }), reason: /request\.role: is not allowed/ },
    { rule: 'a comment over the limit', attempt: () => approve({ token: ui.sign(claims()), comment: 'x'.repeat(2001) }), reason: /at most 2000/ },
    { rule: 'an abort Update without a token', attempt: () => refusal(() => slipway.handle(id).executeUpdate(abortUpdate, { args: [{ reason: 'x', by: 'alice' }] })), reason: /token is required/ },
    { rule: 'an abort by someone who is neither requester nor approver', attempt: () => refusal(() => slipway.handle(id).executeUpdate(abortUpdate, { args: [{ reason: 'x', by: 'mallory', token: ui.sign(claims({ sub: 'mallory', act: 'abort', env: undefined, note: 'x' })) }] })), reason: /may not abort/ },
    { rule: 'an abort token re-bound to approve', attempt: () => approve({ token: ui.sign(claims({ act: 'abort' })) }), reason: /issued for "abort"/ },
  ];

  test.each(rows)('refused: $rule', async ({ attempt, reason }) => {
    expect(await attempt()).toMatch(reason);
    expect(await acceptedUpdates(id)).toBe(0);
  });

  test('refused: an abort signal without a token is ignored (a signal cannot be refused, so it changes nothing)', async () => {
    await slipway.handle(id).signal(abortSignal, { reason: 'forged', by: 'mallory' });
    await new Promise((r) => setTimeout(r, 500));
    const s = await slipway.status(id);
    expect(s.abort).toBeUndefined();
    expect(s.phase).toBe('awaiting-approval');
  });

  test('a valid decision is accepted once: its replay, and the same person padded or capitalised, are refused', async () => {
    const token = ui.sign(claims({ note: 'looks good' }));
    const r = await slipway.handle(id).executeUpdate(approveUpdate, { args: [{ token }] });
    expect(r).toMatchObject({ received: 1, required: 2, complete: false });
    expect(await approve({ token })).toMatch(/already used/);
    expect(await approve({ token: ui.sign(claims({ sub: 'Alice ' })) })).toMatch(/alice has already approved/);
    expect(await acceptedUpdates(id)).toBe(1);
    const s = await slipway.status(id);
    expect(s.approvals).toEqual([expect.objectContaining({ approver: 'alice', comment: 'looks good', identity: expect.objectContaining({ issuer: 'ui', method: 'session', selfAsserted: false }) })]);
  });
});

describe('start requests', () => {
  const start = (args: Record<string, unknown>, version = uniqueVersion()) =>
    slipway.client.workflow.start('releaseWorkflow', { args: [{ service: 'delivery', version, requester: 'ci-bot', ...args }], taskQueue: ORCHESTRATOR_QUEUE, workflowId: releaseWorkflowId('delivery', version) });
  async function failure(h: { result(): Promise<unknown>; fetchHistory(): Promise<{ events?: { eventType?: unknown; activityTaskScheduledEventAttributes?: { activityType?: { name?: string | null } | null } | null }[] | null }> }) {
    const err = await h.result().then(() => undefined, (e) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    // Nothing but reading the plan ran: no build, push or deploy.
    const scheduled = ((await h.fetchHistory()).events ?? []).filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED).map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name);
    expect(scheduled.filter((n) => n !== 'resolveRelease')).toEqual([]);
    return (err as WorkflowFailedError).cause as Error & { type?: string };
  }
  const startToken = (version: string, o: Partial<DecisionClaims> = {}) => local.sign({ sub: 'ci-bot', rel: releaseWorkflowId('delivery', version), act: 'start', src: 'checkout', ...o });

  test('refused: a start request that carries its own plan (environments, approvers)', async () => {
    const v = uniqueVersion();
    const cause = await failure(await start({ environments: [{ name: 'prod', approval: { users: ['mallory'] } }], requesterToken: startToken(v) }, v));
    expect(cause.type).toBe(ErrorTypes.InvalidInput);
    expect(cause.message).toMatch(/input\.environments: is not allowed \(the plan comes from the workers' configuration\)/);
  });
  test('refused: a start request without a requester token', async () => {
    const cause = await failure(await start({}));
    expect(cause.type).toBe(ErrorTypes.Unauthenticated);
    expect(cause.message).toMatch(/requester not verified: token: a signed decision token is required/);
  });
  test('refused: a start token for another release', async () => {
    const v = uniqueVersion();
    const cause = await failure(await start({ requesterToken: startToken(uniqueVersion()) }, v));
    expect(cause.message).toMatch(/issued for release/);
  });
  test('refused: a start token of someone other than the named requester', async () => {
    const v = uniqueVersion();
    const cause = await failure(await start({ requesterToken: startToken(v, { sub: 'mallory' }) }, v));
    expect(cause.message).toMatch(/the token is mallory's, the request names ci-bot/);
  });
  test('refused: a start token re-used to release another image', async () => {
    const v = uniqueVersion();
    const cause = await failure(await start({ image: `127.0.0.1:5000/delivery@${DIGEST}`, requesterToken: startToken(v) }, v));
    expect(cause.message).toMatch(/issued to release checkout, the request releases image:127\.0\.0\.1:5000\/delivery@sha256/);
  });
  test('refused: a start token signed for an approval', async () => {
    const v = uniqueVersion();
    const cause = await failure(await start({ requesterToken: startToken(v, { act: 'approve' }) }, v));
    expect(cause.message).toMatch(/issued for "approve", not "start"/);
  });
  test('a verified start records the plan digest and how the requester was verified', async () => {
    const { workflowId } = await slipway.start(plan());
    const { status } = await slipway.waitFor(workflowId, 'approval', { timeoutMs: 30_000, intervalMs: 100 });
    expect(status.plan?.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(status.requesterIdentity).toMatchObject({ issuer: 'local', method: 'local', selfAsserted: true });
    expect(status.stages[0]).toMatchObject({ id: 'plan', state: 'succeeded' });
    await slipway.abort(workflowId, 'test done', 'ci-bot');
  });
});
