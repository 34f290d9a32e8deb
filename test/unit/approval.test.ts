/** The approval rules as a pure function (the Update validators call it). */
import fc from 'fast-check';
import { refusalReason, type ApprovalContext } from '../../workflows/approval';
import type { ApprovalPlan } from '../../model/types';

const policy: ApprovalPlan = {
  users: ['dave'],
  groups: ['release-managers'],
  groupMembers: { 'release-managers': ['alice', 'bob'] },
  minApprovals: 2,
  requesterCannotApprove: true,
  timeoutMs: 1000,
  onTimeout: 'reject',
};
const DIGEST = `sha256:${'1'.repeat(64)}`;
const ctx = (over: Partial<ApprovalContext> = {}): ApprovalContext => ({
  requester: 'dave',
  digest: DIGEST,
  awaiting: { environment: 'prod', policy },
  approvals: [],
  ...over,
});

test.each([
  ['no identity', ctx(), {}, /identity is required/],
  ['not awaiting', ctx({ awaiting: undefined }), { approver: 'alice' }, /not awaiting approval/],
  ['outsider', ctx(), { approver: 'eve' }, /eve is not an approver for "prod" \(approvers: dave, group:release-managers\)/],
  ['requester', ctx(), { approver: 'dave' }, /dave requested this release/],
  ['twice', ctx({ approvals: [{ environment: 'prod', approver: 'alice', decision: 'approved', at: 'x' }] }), { approver: 'alice' }, /already approved/],
  ['digest mismatch', ctx(), { approver: 'alice', digest: `sha256:${'2'.repeat(64)}` }, /digest mismatch/],
  ['wrong environment', ctx(), { approver: 'alice', environment: 'qa' }, /awaits approval for "prod", not "qa"/],
] as const)('refuses: %s', (_n, c, req, reason) => {
  expect(refusalReason(c, req as any, 'approved')).toMatch(reason);
});

test('accepts group members, listed users (when not the requester) and claimed groups', () => {
  expect(refusalReason(ctx(), { approver: 'alice' }, 'approved')).toBeUndefined();
  expect(refusalReason(ctx({ requester: 'ci' }), { approver: 'dave' }, 'approved')).toBeUndefined();
  expect(refusalReason(ctx(), { approver: 'zoe', groups: ['release-managers'] }, 'approved')).toBeUndefined();
  expect(refusalReason(ctx(), { approver: 'zoe', groups: ['other'] }, 'approved')).toMatch(/not an approver/);
  // An approval for another environment does not count as "already approved" here.
  expect(refusalReason(ctx({ approvals: [{ environment: 'staging', approver: 'alice', decision: 'approved', at: 'x' }] }), { approver: 'alice' }, 'approved')).toBeUndefined();
});

test('the requester may approve when the policy allows it', () => {
  expect(refusalReason(ctx({ awaiting: { environment: 'prod', policy: { ...policy, requesterCannotApprove: false } } }), { approver: 'dave' }, 'approved')).toBeUndefined();
});

test('property: nobody outside the approvers is ever accepted', () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z][a-z0-9]{0,8}$/), (who) => {
      const reason = refusalReason(ctx({ requester: 'ci' }), { approver: who }, 'approved');
      const allowed = ['dave', 'alice', 'bob'].includes(who);
      expect(reason === undefined).toBe(allowed);
    }),
    { numRuns: 1000 },
  );
});
