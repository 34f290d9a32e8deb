/**
 * Aborting a running release: the `abortRelease` Update (signed runs; refused with a reason, leaving no event) and
 * the older `abort` signal (which cannot be refused, so a signed run ignores one without a valid token).
 */
import { log, setHandler } from '@temporalio/workflow';
import type { DecisionClaims } from '../../model/decision-token';
import type { AbortRequest, ReleaseInput } from '../../model/types';
import { isApprover } from '../approval';
import { abortSignal, abortUpdate } from '../messages';
import { refused, type Decisions } from './approval-gate';
import { iso, type Release } from './status';

/** Installs the abort handlers; `cancel` stops the pipeline. Returns the abort once one has been accepted. */
export function listenForAbort(input: ReleaseInput, release: Release, decisions: Decisions, cancel: () => void): () => AbortRequest | undefined {
  const status = release.status;
  let abort: AbortRequest | undefined;
  const finished = () => Boolean(abort) || ['succeeded', 'failed', 'rejected', 'expired', 'aborted'].includes(status.phase);
  const doAbort = (req: AbortRequest) => {
    const { who, claims, identity } = decisions.decider(req.token, req.by);
    abort = { reason: (claims ? claims.note : req?.reason?.slice(0, 2000)) || 'no reason given', by: who || 'unknown' };
    status.abort = { ...abort, at: iso(), ...(identity ? { identity } : {}) };
    cancel();
  };
  /** Who may abort a signed run: its requester, or an approver of any of its environments. */
  const abortRefusal = (req: AbortRequest): string | undefined => {
    if (finished()) return 'the release has already ended or is being aborted';
    let claims: DecisionClaims;
    try {
      claims = decisions.verified(req?.token, { act: 'abort', dig: status.digest ?? 'none' });
    } catch (err) {
      // The refusal's reason, passed on to the caller as text.
      return (err as Error).message;
    }
    const approver = input.environments.some((e) => e.approval && isApprover(e.approval, claims.sub, decisions.vouchedGroups(claims)));
    if (claims.sub !== input.requester && !approver) return `${claims.sub} may not abort this release: only its requester or an approver of one of its environments`;
    return undefined;
  };
  setHandler(abortSignal, (req) => {
    if (finished()) return;
    // Signed runs: a signal cannot be refused, so one without a valid token is ignored (and says so in the log).
    if (decisions.trust) {
      const reason = abortRefusal(req);
      if (reason) return log.warn('abort signal ignored', { reason });
    }
    doAbort(req);
  });
  setHandler(abortUpdate, (req) => (doAbort(req), { aborted: true }), {
    validator: (req) => {
      if (!decisions.trust) throw refused('this release predates signed decisions: use the abort signal');
      const reason = abortRefusal(req);
      if (reason) throw refused(reason);
    },
  });
  return () => abort;
}
