/**
 * The approvals inbox entry a release keeps in its memo under `inbox`. Anyone who may start a workflow in the
 * namespace can set any memo, so readers parse it with this schema and drop what does not parse. The workflow only
 * uses the type (erased at build), so zod does not enter the workflow bundle through this file.
 */
import { z } from 'zod';
import { digestSchema, identitySchema, imageRefSchema, nameSchema } from './config';

// Stage ids are `<kind>` or `<kind>:<environment>` (build, push, approval:prod, deploy:qa …).
const stageIdSchema = z.string().max(128).regex(/^[a-z][a-z0-9-]*(:[a-z][a-z0-9-]*)?$/, 'must be a stage id such as approval:prod');
// An approver entry as the plan writes it: a user, or group:<name> (user: is accepted as written in slipway.yaml).
const principalSchema = z.string().max(140).regex(/^(group:[a-z][a-z0-9-]*|(user:)?[A-Za-z0-9][A-Za-z0-9._@+-]*)$/, 'must be a user or group:<name>');
const isoTime = z.iso.datetime();

export const inboxEntrySchema = z.object({
  environment: nameSchema,
  digest: digestSchema.optional(),
  requester: identitySchema,
  deadline: isoTime,
  received: z.number().int().min(0).max(1000),
  required: z.number().int().min(1).max(1000),
  approvers: z.array(principalSchema).max(100),
  references: z.record(nameSchema, imageRefSchema),
  stages: z.array(z.object({ id: stageIdSchema, endedAt: isoTime.optional() })).max(200),
});
export type InboxEntry = z.infer<typeof inboxEntrySchema>;

/** The memo's inbox entry when it has the documented shape; anything else (forged, malformed, absent) is undefined. */
export function parseInboxEntry(memo: unknown): InboxEntry | undefined {
  const r = inboxEntrySchema.safeParse(memo);
  return r.success ? r.data : undefined;
}
