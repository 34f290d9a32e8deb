/** Smoke tests after a deploy: the rollout is complete, the chart's Helm test hooks pass, or a URL answers. */
import { ErrorTypes } from '../../model/errors';
import { smokeTestInputSchema, type SmokeTestResult } from '../../model/types';
import { check, heartbeat } from '../common';
import type { SlipwayActivities } from '../contract';
import { portError } from '../errors';
import { HelmError } from '../helm/helm';
import { guarded } from './guarded';
import { pollMs, sleep, where, workloadOf, type DeployDeps } from './shared';

export function createSmokeActivities(deps: DeployDeps): Pick<SlipwayActivities, 'smokeTest'> {
  const poll = pollMs(deps);
  const { deployer, cluster } = deps;
  return {
    async smokeTest(raw): Promise<SmokeTestResult> {
      const input = check(smokeTestInputSchema, raw, 'smokeTest');
      const started = Date.now();
      const c = input.check;
      const fail = (detail: string) => portError(ErrorTypes.SmokeTestFailed, `smoke test "${c.type}" failed for ${input.service} in ${input.environment}: ${detail}`);
      return guarded(async () => {
        if (c.type === 'rollout') {
          const state = await cluster.rollout(input.target, await workloadOf(cluster, input.target, input.service));
          if (!state.exists) throw fail(`no Deployment for ${input.service} in ${where(input.target)}`);
          if (!state.done) throw fail(`${state.available}/${state.replicas} available${state.warnings.length ? `; ${state.warnings.join('; ')}` : ''}`);
          return { check: c.type, detail: `${state.available}/${state.replicas} replicas available, all updated`, durationMs: Date.now() - started };
        }
        if (c.type === 'helm-test') {
          let passed: string[];
          try {
            ({ passed } = await deployer.test(input.target, input.service, c.timeoutMs, heartbeat));
          } catch (err) {
            // A failing test hook is the smoke test failing; an unreachable cluster is Helm's failure (retried).
            if (err instanceof HelmError && err.kind !== 'unreachable') throw fail(err.message);
            throw err;
          }
          // A chart without test hooks would pass vacuously: that is not a smoke test.
          if (!passed.length) throw fail('the chart has no Helm test hooks (add one, or remove helm-test from the smoke checks)');
          return { check: c.type, detail: `Helm test hooks succeeded: ${passed.join(', ')}`, durationMs: Date.now() - started };
        }
        // http: retried until the deadline, since a just-rolled-out service may take a moment behind its Service.
        const deadline = Date.now() + c.timeoutMs;
        let last = '';
        while (Date.now() < deadline) {
          try {
            const res = await fetch(c.url, { signal: AbortSignal.timeout(Math.min(10_000, c.timeoutMs)), redirect: 'manual' });
            await res.arrayBuffer().catch(() => undefined);
            if (res.status === c.expectStatus) return { check: c.type, detail: `GET ${c.url} answered ${res.status}`, durationMs: Date.now() - started };
            last = `answered ${res.status}, expected ${c.expectStatus}`;
          } catch (err) {
            last = (err as Error).message;
          }
          heartbeat({ smoke: c.url, last });
          await sleep(Math.min(poll, 1_000));
        }
        throw fail(`GET ${c.url}: ${last} (for ${c.timeoutMs} ms)`);
      });
    },
  };
}
