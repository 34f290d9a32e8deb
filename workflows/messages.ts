/** Workflow messages, defined once and imported by the workflow, the CLI and the UI alike. */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { AbortRequest, ApprovalRequest, ApprovalResponse, ReleaseStatus } from './types';

export const statusQuery = defineQuery<ReleaseStatus>('status');
export const approveUpdate = defineUpdate<ApprovalResponse, [ApprovalRequest]>('approve');
export const rejectUpdate = defineUpdate<ApprovalResponse, [ApprovalRequest]>('reject');
export const abortSignal = defineSignal<[AbortRequest]>('abort');
