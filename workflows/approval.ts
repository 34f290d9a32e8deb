/** The approval rules, as a pure function: the Update validators call it, and so can the UI before it asks. */
import { normaliseIdentity } from '../model/decision-token';
import type { ApprovalPlan, ApprovalRecord, ApprovalRequest } from '../model/types';

export interface ApprovalContext {
  requester: string;
  digest?: string;
  /** The environment whose gate is open now, if any. */
  awaiting?: { environment: string; policy: ApprovalPlan };
  approvals: ApprovalRecord[];
}

/** Identities compare normalised (trimmed, lower-case) on both sides: plans recorded before normalisation included. */
export function isApprover(policy: ApprovalPlan, identity: string, claimedGroups: string[] = []): boolean {
  const who = normaliseIdentity(identity);
  const same = (u: string) => normaliseIdentity(u) === who;
  if (policy.users.some(same)) return true;
  return policy.groups.some((g) => claimedGroups.includes(g) || (policy.groupMembers[g] ?? []).some(same));
}

export function describeApprovers(policy: ApprovalPlan): string[] {
  return [...policy.users, ...policy.groups.map((g) => `group:${g}`)];
}

/** Returns why the request must be refused, or undefined when it may proceed. */
export function refusalReason(ctx: ApprovalContext, req: ApprovalRequest, decision: 'approved' | 'rejected'): string | undefined {
  // One normal form, validated and stored alike: "bob " and "bob" are one approver.
  const who = req.approver === undefined ? '' : normaliseIdentity(req.approver);
  if (!who) return 'an identity is required (--as, or the authenticated user)';
  if (!ctx.awaiting) return 'this release is not awaiting approval';
  const { environment, policy } = ctx.awaiting;
  if (req.environment && req.environment !== environment) {
    return `this release awaits approval for "${environment}", not "${req.environment}"`;
  }
  if (req.digest && ctx.digest && req.digest !== ctx.digest) {
    return `digest mismatch: the release is ${ctx.digest}, the ${decision === 'approved' ? 'approval' : 'rejection'} names ${req.digest}`;
  }
  const isRequester = who === normaliseIdentity(ctx.requester);
  if (decision === 'rejected') {
    // The requester may always withdraw their own release; anyone else must be an approver.
    if (!isRequester && !isApprover(policy, who, req.groups)) {
      return `${who} is not an approver for "${environment}" (approvers: ${describeApprovers(policy).join(', ')})`;
    }
    return undefined;
  }
  if (!isApprover(policy, who, req.groups)) {
    return `${who} is not an approver for "${environment}" (approvers: ${describeApprovers(policy).join(', ')})`;
  }
  if (policy.requesterCannotApprove && isRequester) {
    return `${who} requested this release and the "${environment}" policy forbids approving one's own release`;
  }
  if (ctx.approvals.some((a) => a.environment === environment && a.decision === 'approved' && normaliseIdentity(a.approver) === who)) {
    return `${who} has already approved this release for "${environment}"; ${policy.minApprovals} distinct approvers are required`;
  }
  return undefined;
}
