/**
 * Decisions people send a running release, and the approval gate before each later environment. On signed runs
 * every decision carries a token verified against the keys pinned at start; older runs take the request's name.
 */
import { ApplicationFailure, condition, isCancellation, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { ErrorTypes } from '../../model/errors';
import { normaliseIdentity, readClaims, verifyDecisionToken, type DecisionClaims, type Expected, type TrustAnchors } from '../../model/decision-token';
import { approvalRequestProblems } from '../../model/requests';
import { SA } from '../../model/search-attributes';
import type { ApprovalRequest, ApprovalResponse, DecisionIdentity, EnvironmentPlan, ReleaseInput } from '../../model/types';
import { describeApprovers, refusalReason } from '../approval';
import { approveUpdate, rejectUpdate } from '../messages';
import { iso, type Release } from './status';

/** What a verified token says about who decided, as recorded in the status. */
export const identityOf = (claims: DecisionClaims, trust: TrustAnchors): DecisionIdentity => ({
  issuer: claims.iss,
  method: claims.amr,
  // The local stack's key, and an edge's pick-a-name sign-in (UI local mode), assert identities nobody checked.
  selfAsserted: (trust.issuers.find((i) => i.name === claims.iss)?.selfAsserted ?? true) || claims.amr === 'local',
  tokenId: claims.jti,
});

/** A decision a validator refuses: the caller gets the reason and the history gets no event. */
export const refused = (reason: string) => ApplicationFailure.nonRetryable(reason, ErrorTypes.ApprovalRefused);

/** Who decides: token verification (signed runs) and the identity a decision is recorded under. */
export class Decisions {
  /** Token ids already accepted: each decision token counts once. */
  private readonly used = new Set<string>();
  private readonly workflowId = workflowInfo().workflowId;
  private readonly runId = workflowInfo().runId;

  constructor(readonly trust: TrustAnchors | undefined) {}

  /** Signed runs: the token, verified against the keys pinned at start; throws the refusal. */
  verified(token: unknown, expect: Omit<Expected, 'rel' | 'run'>): DecisionClaims {
    const v = verifyDecisionToken(token, this.trust!, { ...expect, rel: this.workflowId, run: this.runId }, Date.now(), this.used);
    if (!v.ok) throw refused(v.reason);
    return v.claims;
  }

  /** The identity a decision is recorded under: the token's (signed runs), else the request's, normalised. */
  decider(token: unknown, asserted: string | undefined): { who: string; claims?: DecisionClaims; identity?: DecisionIdentity } {
    const claims = this.trust ? readClaims(token) : undefined;
    // The validator verified this token; a signed run never records an unsigned name.
    if (this.trust && !claims) throw refused('token: a signed decision token is required');
    if (claims) this.used.add(claims.jti);
    return { who: claims ? claims.sub : normaliseIdentity(asserted ?? ''), claims, identity: claims ? identityOf(claims, this.trust!) : undefined };
  }

  /** Groups count only from an edge that authenticated them; a self-asserted token's groups are ignored. */
  vouchedGroups(claims: DecisionClaims): string[] {
    return identityOf(claims, this.trust!).selfAsserted ? [] : (claims.groups ?? []);
  }
}

/** The `approve` and `reject` Updates, and the wait for them before an environment that requires approval. */
export class ApprovalGate {
  /** Set by a rejection; the waiting gate fails the release with it. */
  private rejection: { by: string; comment?: string } | undefined;

  constructor(
    private readonly input: ReleaseInput,
    private readonly release: Release,
    private readonly decisions: Decisions,
  ) {}

  /** Installs the Update handlers; their validators refuse a decision that may not count, leaving no event. */
  listen(): this {
    setHandler(approveUpdate, this.decide('approved'), { validator: this.validator('approved') });
    setHandler(rejectUpdate, this.decide('rejected'), { validator: this.validator('rejected') });
    return this;
  }

  private context() {
    const status = this.release.status;
    return {
      requester: this.input.requester,
      digest: status.digest,
      awaiting: status.awaitingApproval
        ? { environment: status.awaitingApproval.environment, policy: this.input.environments.find((e) => e.name === status.awaitingApproval!.environment)!.approval! }
        : undefined,
      approvals: status.approvals,
    };
  }

  private decide = (decision: 'approved' | 'rejected') => (req: ApprovalRequest): ApprovalResponse => {
    const status = this.release.status;
    const environment = status.awaitingApproval!.environment;
    const { who, claims, identity } = this.decisions.decider(req.token, req.approver);
    const comment = claims ? claims.note : req.comment;
    status.approvals.push({ environment, approver: who, decision, comment, at: iso(), ...(identity ? { identity } : {}) });
    const received = this.release.approvalsFor(environment);
    status.awaitingApproval!.received = received;
    if (decision === 'rejected') this.rejection = { by: who, comment };
    const required = status.awaitingApproval!.required;
    this.release.publishInbox();
    return { environment, decision, received, required, complete: decision === 'rejected' || received >= required };
  };

  private validator = (decision: 'approved' | 'rejected') => (req: ApprovalRequest): void => {
    const status = this.release.status;
    const shape = approvalRequestProblems(req);
    if (shape.length) throw refused(shape.join('; '));
    if (!this.decisions.trust) {
      const reason = refusalReason(this.context(), req, decision);
      if (reason) throw refused(reason);
      return;
    }
    if (!status.awaitingApproval) throw refused('this release is not awaiting approval');
    const env = status.awaitingApproval.environment;
    if (req.environment !== undefined && req.environment !== env) throw refused(`this release awaits approval for "${env}", not "${req.environment}"`);
    const claims = this.decisions.verified(req.token, { act: decision === 'approved' ? 'approve' : 'reject', env, dig: status.digest ?? 'none' });
    // Fields sent beside the token must say what it says: nothing unsigned is believed.
    if (req.approver !== undefined && normaliseIdentity(req.approver) !== claims.sub) throw refused(`approver: the token is ${claims.sub}'s, the request names ${req.approver}`);
    if (req.digest !== undefined && req.digest !== claims.dig) throw refused(`digest: the request names ${req.digest}, the token ${claims.dig}`);
    if (req.comment !== undefined && req.comment !== (claims.note ?? '')) throw refused('comment: differs from the comment signed in the token');
    const reason = refusalReason(this.context(), { approver: claims.sub, groups: this.decisions.vouchedGroups(claims), environment: claims.env, digest: claims.dig }, decision);
    if (reason) throw refused(reason);
  };

  /** The gate: waits for enough approvals, a rejection, or the deadline (then the policy's onTimeout decides). */
  async wait(env: EnvironmentPlan): Promise<void> {
    const policy = env.approval!;
    const release = this.release;
    const status = release.status;
    const id = `approval:${env.name}`;
    const deadline = Date.now() + policy.timeoutMs;
    release.begin(id, 'waiting');
    status.phase = 'awaiting-approval';
    status.awaitingApproval = {
      environment: env.name,
      required: policy.minApprovals,
      received: release.approvalsFor(env.name),
      deadline: iso(deadline),
      approvers: describeApprovers(policy),
    };
    upsertSearchAttributes([{ key: SA.awaitingApproval, value: env.name }]);
    release.publishInbox();
    try {
      const decided = await condition(() => Boolean(this.rejection) || release.approvalsFor(env.name) >= policy.minApprovals, policy.timeoutMs);
      const approvers = status.approvals.filter((a) => a.environment === env.name);
      const r = this.rejection;
      if (r) {
        release.end(id, 'failed', { approvals: approvers }, `rejected by ${r.by}${r.comment ? `: ${r.comment}` : ''}`);
        throw ApplicationFailure.nonRetryable(`release rejected for ${env.name} by ${r.by}${r.comment ? `: ${r.comment}` : ''}`, ErrorTypes.ApprovalRejected);
      }
      if (!decided && policy.onTimeout === 'reject') {
        release.end(id, 'failed', { approvals: approvers }, `approval deadline ${iso(deadline)} passed`);
        throw ApplicationFailure.nonRetryable(
          `approval for ${env.name} expired at ${iso(deadline)} with ${approvers.length}/${policy.minApprovals} approvals`,
          ErrorTypes.ApprovalExpired,
        );
      }
      release.end(id, 'succeeded', { approvals: approvers, ...(decided ? {} : { autoApprovedAt: iso(), reason: 'deadline passed; policy onTimeout=approve' }) });
    } catch (err) {
      if (isCancellation(err)) release.end(id, 'cancelled');
      throw err;
    } finally {
      status.awaitingApproval = undefined;
      if (status.phase === 'awaiting-approval') status.phase = 'running';
      upsertSearchAttributes([{ key: SA.awaitingApproval, value: '' }]);
      release.publishInbox();
    }
  }
}
