/** Workflow messages, defined once and imported by the workflow, the CLI and the UI alike. */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AbortRequest, ApprovalRequest, ApprovalResponse, CanaryActionRequest, CanaryStatus, ReleaseStatus } from '../model/types';

export const statusQuery = defineQuery<ReleaseStatus>('status');
export const approveUpdate = defineUpdate<ApprovalResponse, [ApprovalRequest]>('approve');
export const rejectUpdate = defineUpdate<ApprovalResponse, [ApprovalRequest]>('reject');
export const abortSignal = defineSignal<[AbortRequest]>('abort');
/** Operators steer a running canary: promote now, skip the current step (a pause or an analysis), or roll back. */
export const canaryUpdate = defineUpdate<CanaryStatus, [CanaryActionRequest]>('canary');
/**
 * Abort as an Update, so an abort without a valid signed token is refused with a reason and leaves no event. The
 * `abort` signal stays for runs from before; on newer runs it is ignored unless it carries a valid token.
 */
export const abortUpdate = defineUpdate<{ aborted: boolean }, [AbortRequest]>('abortRelease');

/**
 * A forge webhook says a release's pull request changed (merged, closed, reviewed). Only a nudge: the workflow
 * re-reads the pull request from the forge and never trusts what the sender says. Refused (no event) unless the
 * release is waiting for that pull request.
 */
export interface PullRequestChanged {
  environment: string;
  number: number;
}
export const gitopsPullRequestChangedUpdate = defineUpdate<{ accepted: boolean }, [PullRequestChanged]>('gitopsPullRequestChanged');
