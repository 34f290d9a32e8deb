/**
 * The GitOps activities (issue #13): the release's change in the environment repository, its pull request, the
 * revert, and the wait for Flux. Each builds its adapters from the delivery section in its input; the token is read
 * here, from the workers' environment variable the section names (forge.tokenEnv), and never leaves the worker.
 */
import { z } from 'zod';
import { digestSchema, nameSchema, kubeContextSchema } from '../../model/config';
import { fluxRefsSchema, gitopsDeliverySchema, type GitopsDelivery } from '../../model/gitops';
import { ErrorTypes } from '../../model/errors';
import { check, heartbeat, signal } from '../common';
import { portError } from '../errors';
import type { GitopsActivities } from '../contract';
import { gitopsAdapters } from './index';
import type { EnvironmentRepository, Forge, GitOpsController } from './ports';

export interface GitopsDeps {
  /** Adapters for one delivery section (default: git.ts and forge/ with the token from process.env). */
  adapters?: (delivery: GitopsDelivery) => { repository: EnvironmentRepository; forge: Forge };
  flux: GitOpsController;
  /** How often a long git or forge call heartbeats. */
  beatMs?: number;
  /**
   * The gitops delivery sections of the workers' own slipway.yaml. Given, an input naming any other repository,
   * forge or token variable is refused: an activity input cannot send the workers' token somewhere else.
   */
  configured?: () => GitopsDelivery[];
}

/** The fields that decide where a token goes. */
const destination = (d: GitopsDelivery) => JSON.stringify([d.repository.url, d.forge.type, d.forge.tokenEnv, d.forge.apiUrl ?? null]);

const workflowIdSchema = z.string().min(1).max(255);
const changeSchema = z.strictObject({ workflowId: workflowIdSchema, environment: nameSchema, service: nameSchema, version: z.string().min(1).max(128), repository: z.string().min(1).max(512), digest: digestSchema });
const applySchema = z.strictObject({ delivery: gitopsDeliverySchema, change: changeSchema, to: z.enum(['direct', 'branch']) });
const openSchema = z.strictObject({ delivery: gitopsDeliverySchema, head: z.string().min(1).max(255), title: z.string().min(1).max(255), body: z.string().max(20_000) });
const prSchema = z.strictObject({ delivery: gitopsDeliverySchema, number: z.number().int().positive(), sha: z.string().regex(/^[0-9a-f]{7,64}$/).optional() });
const revertSchema = z.strictObject({ delivery: gitopsDeliverySchema, workflowId: workflowIdSchema, environment: nameSchema, to: z.enum(['direct', 'branch']) });
const fluxSchema = z.strictObject({
  target: z.strictObject({ context: kubeContextSchema, namespace: nameSchema }),
  flux: fluxRefsSchema,
  commit: z.string().regex(/^[0-9a-f]{7,64}$/, 'must be a commit id'),
  timeoutMs: z.number().int().positive(),
});

export function createGitopsActivities(deps: GitopsDeps): GitopsActivities {
  const make = deps.adapters ?? ((d: GitopsDelivery) => gitopsAdapters(d));
  const adapters = (d: GitopsDelivery) => {
    if (deps.configured && !deps.configured().some((c) => destination(c) === destination(d))) {
      throw portError(ErrorTypes.InvalidInput, `delivery: ${d.repository.url} with ${d.forge.type} and ${d.forge.tokenEnv} is not a gitops delivery of the workers' slipway.yaml: its token is not used for it`);
    }
    return make(d);
  };
  /** Git clones and forge calls do not report progress: a timer shows the worker is alive while one runs. */
  const beating = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    heartbeat({ step: what });
    const t = setInterval(() => heartbeat({ step: what }), deps.beatMs ?? 5_000);
    try {
      return await fn();
    } finally {
      clearInterval(t);
    }
  };
  return {
    async gitopsApplyChange(raw) {
      const input = check(applySchema, raw, 'gitopsApplyChange');
      return beating('apply change', () => adapters(input.delivery).repository.applyChange(input.change, input.to));
    },
    async gitopsOpenPullRequest(raw) {
      const input = check(openSchema, raw, 'gitopsOpenPullRequest');
      return beating('open pull request', () => adapters(input.delivery).forge.openPullRequest({ head: input.head, base: input.delivery.repository.branch, title: input.title, body: input.body }));
    },
    async gitopsPullRequestStatus(raw) {
      const input = check(prSchema, raw, 'gitopsPullRequestStatus');
      return beating('read pull request', () => adapters(input.delivery).forge.getPullRequest(input.number));
    },
    async gitopsMergePullRequest(raw) {
      const input = check(prSchema, raw, 'gitopsMergePullRequest');
      return beating('merge pull request', () => adapters(input.delivery).forge.mergePullRequest(input.number, input.sha ? { sha: input.sha } : {}));
    },
    async gitopsRevertChange(raw) {
      const input = check(revertSchema, raw, 'gitopsRevertChange');
      return beating('revert change', () => adapters(input.delivery).repository.revertChange(input.workflowId, input.environment, input.to));
    },
    async waitFluxApplied(raw) {
      const input = check(fluxSchema, raw, 'waitFluxApplied');
      return deps.flux.waitApplied(input, heartbeat, signal());
    },
  };
}
