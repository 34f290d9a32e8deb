/**
 * The start of a run: which plan is released and by whom. Signed runs read the plan and the trusted keys from the
 * workers and verify the requester's token; runs from before signed decisions carry the plan in their input.
 */
import { ApplicationFailure, patched, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { ErrorTypes } from '../../model/errors';
import { normaliseIdentity, startSource, verifyDecisionToken, type TrustAnchors } from '../../model/decision-token';
import { startRequestProblems } from '../../model/requests';
import { releaseInputProblems } from '../../model/rules';
import { SA } from '../../model/search-attributes';
import type { ReleaseInput, ReleaseStatus, ResolvedRelease, StageStatus, StartRequest } from '../../model/types';
import { statusQuery } from '../messages';
import { planActs } from '../plan-proxy';
import { identityOf } from './approval-gate';
import { SIGNED_DECISIONS_PATCH, START_TOKEN_SOURCE_PATCH } from './patches';
import { iso, messageOf, type Resolved } from './status';

export interface Started {
  input: ReleaseInput;
  /** The keys decisions are verified against; absent on runs from before signed decisions. */
  trust?: TrustAnchors;
  resolved?: Resolved;
}

/** The run's plan, validated: a release with an invalid plan fails before any activity is scheduled. */
export async function startRelease(rawInput: StartRequest | ReleaseInput): Promise<Started> {
  const started: Started = patched(SIGNED_DECISIONS_PATCH) ? await resolveStart(rawInput) : { input: rawInput as ReleaseInput };
  const problems = releaseInputProblems(started.input);
  if (problems.length) throw ApplicationFailure.nonRetryable(`invalid release input:\n${problems.join('\n')}`, ErrorTypes.InvalidInput);
  return started;
}

/**
 * A new run: the start request names only the release and who asks. The plan and the trusted keys come from the
 * workers (recorded in the history with the plan's digest); the requester must hold a token signed for this start.
 */
async function resolveStart(raw: unknown): Promise<Required<Started>> {
  const problems = startRequestProblems(raw);
  if (problems.length) throw ApplicationFailure.nonRetryable(`invalid start request:\n${problems.join('\n')}`, ErrorTypes.InvalidInput);
  const req = raw as StartRequest;
  const stage: StageStatus = { id: 'plan', kind: 'plan', state: 'running', startedAt: iso() };
  const early: ReleaseStatus = { service: req.service, version: req.version, requester: normaliseIdentity(req.requester), phase: 'running', references: {}, stages: [stage], approvals: [], startedAt: iso() };
  setHandler(statusQuery, () => early);
  const fail = (message: string, type: string) => {
    Object.assign(stage, { state: 'failed', endedAt: iso(), error: message });
    Object.assign(early, { phase: 'failed', error: message, endedAt: iso() });
    upsertSearchAttributes([{ key: SA.stage, value: 'failed' }]);
    return ApplicationFailure.nonRetryable(message, type, early);
  };
  let planned: ResolvedRelease;
  try {
    planned = await planActs.resolveRelease({ service: req.service, version: req.version, requester: req.requester, ...(req.gitSha ? { gitSha: req.gitSha } : {}), ...(req.image ? { image: req.image } : {}) });
  } catch (err) {
    // The activity's own failure type (InvalidInput, PlanRefused…) is kept: callers branch on it.
    throw fail(`the workers' configuration refuses this release: ${messageOf(err)}`, (err as any)?.cause?.type ?? ErrorTypes.PlanRefused);
  }
  // Bound to what is released, and judged as of the run's start: a slow queue must not expire a valid request.
  const src = patched(START_TOKEN_SOURCE_PATCH) ? startSource(req) : undefined;
  const v = verifyDecisionToken(req.requesterToken, planned.trust, { act: 'start', rel: workflowInfo().workflowId, ...(src ? { src } : {}) }, workflowInfo().runStartTime.getTime(), new Set());
  if (!v.ok) throw fail(`requester not verified: ${v.reason}`, ErrorTypes.Unauthenticated);
  if (v.claims.sub !== planned.plan.requester) throw fail(`requester not verified: the token is ${v.claims.sub}'s, the request names ${planned.plan.requester}`, ErrorTypes.Unauthenticated);
  const requesterIdentity = identityOf(v.claims, planned.trust);
  Object.assign(stage, { state: 'succeeded', endedAt: iso(), result: { source: planned.source, planDigest: planned.planDigest, requester: v.claims.sub, verifiedBy: v.claims.iss, method: v.claims.amr, selfAsserted: requesterIdentity.selfAsserted } });
  return { input: planned.plan, trust: planned.trust, resolved: { planned, stage, requesterIdentity } };
}
