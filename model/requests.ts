/**
 * Shape checks of what callers send the workflow (start request, decisions), as pure code: zod would add about 1 MB
 * to every cached workflow (see rules.ts). Each problem names its field and the rule.
 */
import { IDENTITY_RE, IMAGE_REF_RE, MAX_SERVICE_NAME, NAME_RE, versionProblem } from './rules';

const str = (v: unknown): v is string => typeof v === 'string';

function unknownKeys(o: Record<string, unknown>, allowed: string[], root: string): string[] {
  return Object.keys(o).filter((k) => !allowed.includes(k)).map((k) => `${root}.${k}: is not allowed${k === 'environments' || k === 'chart' || k === 'build' ? ' (the plan comes from the workers\' configuration)' : ''}`);
}

export function startRequestProblems(raw: unknown): string[] {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return ['input: must be an object'];
  const r = raw as Record<string, unknown>;
  const problems = unknownKeys(r, ['service', 'version', 'gitSha', 'image', 'requester', 'requesterToken'], 'input');
  if (!str(r.service) || r.service.length > MAX_SERVICE_NAME || !NAME_RE.test(r.service)) problems.push(`input.service: must be a service name (a-z, 0-9, "-", at most ${MAX_SERVICE_NAME} characters: the Helm release name)`);
  if (!str(r.version) || versionProblem(r.version)) problems.push(`input.version: ${str(r.version) ? versionProblem(r.version) : 'must be a semantic version such as v1.0.2'}`);
  if (r.gitSha !== undefined && (!str(r.gitSha) || !/^[0-9a-f]{7,40}$/.test(r.gitSha))) problems.push('input.gitSha: must be 7 to 40 lower-case hex digits');
  if (r.image !== undefined && (!str(r.image) || r.image.length > 512 || !IMAGE_REF_RE.test(r.image))) problems.push('input.image: must be a fully qualified image reference');
  if (!str(r.requester) || r.requester.length > 128 || !IDENTITY_RE.test(r.requester.trim())) problems.push('input.requester: must be a user name');
  if (r.requesterToken !== undefined && (!str(r.requesterToken) || r.requesterToken.length > 8192)) problems.push('input.requesterToken: must be a signed token of at most 8192 characters');
  return problems;
}

const APPROVAL_KEYS = ['token', 'approver', 'groups', 'comment', 'digest', 'environment'];

/** The approval request schema (types.ts) as pure checks: the Update validators apply it before anything else. */
export function approvalRequestProblems(raw: unknown): string[] {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return ['request: must be an object'];
  const r = raw as Record<string, unknown>;
  const problems = unknownKeys(r, APPROVAL_KEYS, 'request');
  if (r.token !== undefined && (!str(r.token) || r.token.length > 8192)) problems.push('request.token: must be a string of at most 8192 characters');
  if (r.approver !== undefined && (!str(r.approver) || r.approver.length > 128 || !IDENTITY_RE.test(r.approver.trim()))) problems.push('request.approver: must be a user name or e-mail address');
  if (r.groups !== undefined && (!Array.isArray(r.groups) || r.groups.length > 100 || !r.groups.every((g) => str(g) && NAME_RE.test(g)))) problems.push('request.groups: must be at most 100 group names');
  if (r.comment !== undefined && (!str(r.comment) || r.comment.length > 2000)) problems.push('request.comment: must be at most 2000 characters');
  if (r.digest !== undefined && (!str(r.digest) || !/^sha256:[a-f0-9]{64}$/.test(r.digest))) problems.push('request.digest: must be sha256:<64 hex digits>');
  if (r.environment !== undefined && (!str(r.environment) || !NAME_RE.test(r.environment))) problems.push('request.environment: must be an environment name');
  return problems;
}
