/**
 * The release workflow's patch ids, in one place. They are recorded in histories (as markers) and replays of
 * older runs depend on them: never rename one, and call `patched(id)` at the same point of the run as before.
 */

/** The approvals inbox memo (`Release.publishInbox`); runs from before replay without it. */
export const INBOX_MEMO_PATCH = 'inbox-memo';
/**
 * Runs started after this patch read their plan from the workers' configuration and accept only signed decisions;
 * runs from before (their input holds the plan) replay and continue as they were.
 */
export const SIGNED_DECISIONS_PATCH = 'plan-from-workers-signed-decisions';
/** An operator's canary action is scoped to the environment whose canary it was sent to. */
export const CANARY_SCOPE_PATCH = 'canary-action-scope';
/**
 * Each canary interval measures only its new points and the workflow keeps the samples (history linear in the
 * interval count); runs from before measured the whole analysis range at every interval.
 */
export const CANARY_INCREMENTAL_PATCH = 'canary-incremental-measure';
/**
 * A start token is bound to what is released (image, commit or checkout: its `src` claim). Runs started before
 * carry tokens without it and replay verifying the rest of the token, as they ran.
 */
export const START_TOKEN_SOURCE_PATCH = 'start-token-source';
