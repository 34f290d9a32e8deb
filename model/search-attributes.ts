/** The visibility fields SREs filter on and the approvals inbox queries; registered on the server at start. */
import { defineSearchAttributeKey } from '@temporalio/common';

export const SA = {
  service: defineSearchAttributeKey('SlipwayService', 'KEYWORD'),
  version: defineSearchAttributeKey('SlipwayVersion', 'KEYWORD'),
  digest: defineSearchAttributeKey('SlipwayImageDigest', 'KEYWORD'),
  stage: defineSearchAttributeKey('SlipwayStage', 'KEYWORD'),
  awaitingApproval: defineSearchAttributeKey('SlipwayAwaitingApproval', 'KEYWORD'),
  requester: defineSearchAttributeKey('SlipwayRequester', 'KEYWORD'),
} as const;

export const ALL_SEARCH_ATTRIBUTES = Object.values(SA);
