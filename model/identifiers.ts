/**
 * Identifiers and their parsers, zod-free (the workflow bundle carries this module): release ids, approver
 * principals, scan severities and the kinds of traffic router. Each is written once here.
 */
import { MAX_SERVICE_NAME, MAX_VERSION } from './rules';

/** A release's workflow id: one release per service and version. */
export const releaseWorkflowId = (service: string, version: string): string => `release:${service}:${version}`;
/** release:<service>:<version>, within the service's and the version's own limits (rules.ts). */
export const RELEASE_ID_RE = new RegExp(`^release:[a-z](?:[a-z0-9-]{0,${MAX_SERVICE_NAME - 2}}[a-z0-9])?:[A-Za-z0-9._-]{1,${MAX_VERSION}}$`);
export const RELEASE_ID_RULE = 'must be a release id, release:<service>:<version>';
export const isReleaseId = (id: string): boolean => RELEASE_ID_RE.test(id);

/** An approver as slipway.yaml names one: "alice" or "user:alice" is a person, "group:release-managers" a group. */
export type Principal = { kind: 'user'; name: string } | { kind: 'group'; name: string };
export function parsePrincipal(text: string): Principal {
  if (text.startsWith('group:')) return { kind: 'group', name: text.slice('group:'.length) };
  return { kind: 'user', name: text.startsWith('user:') ? text.slice('user:'.length) : text };
}

/** Scan severities, lowest first (Trivy's names). */
export const SEVERITIES = ['UNKNOWN', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** How a canary's share of traffic is set: replica ratio, a Gateway API HTTPRoute, an Istio VirtualService. */
export const TRAFFIC_ROUTERS = ['replicas', 'gateway-api', 'istio'] as const;
export type TrafficPlan = { type: 'replicas' } | { type: 'gateway-api'; route: string } | { type: 'istio'; virtualService: string };

/** An image reference split into its parts: name = host[:port]/path, then [:tag][@digest]. */
export interface ImageRef {
  name: string;
  tag?: string;
  digest?: string;
}

/** host/path[:tag][@digest] → its parts (a ":" after the last "/" starts the tag; a host's port comes before it). */
export function parseImageRef(ref: string): ImageRef {
  const at = ref.indexOf('@');
  const digest = at >= 0 ? ref.slice(at + 1) : undefined;
  const rest = at >= 0 ? ref.slice(0, at) : ref;
  const colon = rest.lastIndexOf(':');
  const tagged = colon > rest.lastIndexOf('/');
  return { name: tagged ? rest.slice(0, colon) : rest, ...(tagged ? { tag: rest.slice(colon + 1) } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** A fully qualified reference (registry host first), as promotion and scans need: its registry and repository. */
export function parseQualifiedImageRef(ref: string): ImageRef & { registry: string; repository: string } {
  const parts = parseImageRef(ref);
  const slash = parts.name.indexOf('/');
  if (slash <= 0) throw new Error(`image reference "${ref}" must start with a registry host`);
  if (slash === parts.name.length - 1) throw new Error(`image reference "${ref}" has no repository`);
  return { ...parts, registry: parts.name.slice(0, slash), repository: parts.name.slice(slash + 1) };
}

