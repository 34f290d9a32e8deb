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
