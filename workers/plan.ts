/**
 * The release plan comes from the workers' own configuration, never from the start request: whoever may start a
 * workflow must not choose the environments, gates, approvers, targets or URLs. At each release's start this
 * activity reads slipway.yaml, resolves the plan and the public keys of the edges whose decision tokens count, and
 * returns them with the plan's digest — all recorded in the history.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { checkChart, loadConfig } from '../host/config';
import { planRelease } from '../model/plan';
import { UsageError } from '../model/errors';
import { ensureKeyPair, keyDirFor, rawPublicKey } from '../host/keys';
import { parseDuration, type IdentityConfig, type SlipwayConfig } from '../model/config';
import { normaliseIdentity, type TrustAnchors } from '../model/decision-token';
import { ErrorTypes } from '../model/errors';
import type { ResolveReleaseInput } from '../model/types';
import type { SlipwayActivities } from '../activities/contract';

/** The issuer name reserved for self-asserted identities signed with the local stack's key. */
export const LOCAL_ISSUER = 'local';

/** JSON with sorted keys: the plan's digest must not depend on the order slipway.yaml was written in. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export const sha256Of = (text: string): string => `sha256:${createHash('sha256').update(text).digest('hex')}`;

/** The public keys a release trusts, from the identity section (local-stack key pairs are created on first use). */
export function trustAnchorsOf(identity: IdentityConfig | undefined, baseDir: string, env: NodeJS.ProcessEnv = process.env): TrustAnchors {
  if (!identity) return { issuers: [], maxTtlSeconds: 300 };
  const keyDir = keyDirFor(identity, env);
  const issuers = identity.issuers.map((i, n) => {
    if (i.name === LOCAL_ISSUER) throw new UsageError(`identity.issuers: "${LOCAL_ISSUER}" is reserved for self-asserted identities (identity.local)`);
    // Only the local stack creates an edge's key pair on first use; elsewhere a worker must never hold a trusted private key.
    if (!i.publicKey && !i.publicKeyFile && !identity.local) throw new UsageError(`identity.issuers.${n}: give publicKey or publicKeyFile (key pairs are created on first use only on the local stack, identity.local: true)`);
    const text = i.publicKey ?? readFileSync(i.publicKeyFile ? (isAbsolute(i.publicKeyFile) ? i.publicKeyFile : resolve(baseDir, i.publicKeyFile)) : ensureKeyPair(keyDir, i.name).publicKeyFile, 'utf8');
    try {
      return { name: i.name, publicKey: rawPublicKey(text), selfAsserted: false };
    } catch (err) {
      throw new UsageError(`identity.issuers.${i.name}: ${(err as Error).message}`);
    }
  });
  if (identity.local) issuers.push({ name: LOCAL_ISSUER, publicKey: rawPublicKey(readFileSync(ensureKeyPair(keyDir, LOCAL_ISSUER).publicKeyFile, 'utf8')), selfAsserted: true });
  return { issuers, maxTtlSeconds: Math.floor(parseDuration(identity.tokenTtl)! / 1000) };
}

export interface PlanDeps {
  /** The configuration for a request (re-read per release, so an edited slipway.yaml applies to the next release). */
  config: (req: ResolveReleaseInput) => { config: SlipwayConfig; source: string; repoRoot?: string };
}

/** slipway.yaml from a file; charts are checked in `repoRoot` (the workers' checkout), else beside the file. */
export const configFromFile = (file: string, repoRoot?: string): PlanDeps['config'] => () => ({ config: loadConfig(file), source: resolve(file), repoRoot: repoRoot ?? dirname(resolve(file)) });

export function createPlanActivities(deps: PlanDeps): Pick<SlipwayActivities, 'resolveRelease'> {
  return {
    async resolveRelease(req) {
      try {
        const { config, source, repoRoot } = deps.config(req);
        const plan = planRelease(config, { ...req, requester: normaliseIdentity(String(req.requester ?? '')) });
        if (plan.chart && repoRoot) checkChart(config, plan.service, repoRoot);
        const trust = trustAnchorsOf(config.identity, repoRoot ?? process.cwd());
        return { plan, planDigest: sha256Of(canonicalJson(plan)), trust, source };
      } catch (err) {
        // A plan the configuration refuses will not appear by retrying.
        if (err instanceof UsageError) throw ApplicationFailure.nonRetryable(err.message, ErrorTypes.PlanRefused);
        throw err;
      }
    },
  };
}
