/** The per-environment deploy lock: a Kubernetes Lease per service, taken over only from a holder that has finished. */
import { CancelledFailure, Context } from '@temporalio/activity';
import { ErrorTypes } from '../../model/errors';
import { deployLockInputSchema } from '../../model/types';
import { check, heartbeat, signal } from '../common';
import type { SlipwayActivities } from '../contract';
import { portError } from '../errors';
import { guarded } from './guarded';
import { pollMs, sleep, where, type DeployDeps } from './shared';

const leaseName = (service: string) => `slipway-${service}`;

export function createLockActivities(deps: DeployDeps): Pick<SlipwayActivities, 'acquireDeployLock' | 'releaseDeployLock'> {
  const poll = pollMs(deps);
  const { cluster } = deps;
  return {
    async acquireDeployLock(raw) {
      const input = check(deployLockInputSchema, raw, 'acquireDeployLock');
      const started = Date.now();
      const name = leaseName(input.service);
      let tookOverFrom: string | undefined;
      let waitedFor: string | undefined;
      const canTakeOver = async (holder: string) => {
        const active = deps.holderActive ? await deps.holderActive(holder) : true;
        if (!active) tookOverFrom = holder;
        return !active;
      };
      return guarded(async () => {
        // Waits until the activity's own timeout (busyTimeout) when the policy is to wait; Temporal cancels it then.
        for (;;) {
          const r = await cluster.acquireLease(input.target, name, input.holder, input.note, canTakeOver);
          if (r.acquired) return { acquired: true, waitedMs: Date.now() - started, ...(tookOverFrom ? { tookOverFrom } : {}), ...(waitedFor ? { waitedFor } : {}) };
          const busy = `${input.environment} (${where(input.target)}) is held by release ${r.holder}${r.note ? ` (${r.note})` : ''} since ${r.since ?? '?'}`;
          if (input.whenBusy === 'refuse') throw portError(ErrorTypes.EnvironmentBusy, `${busy}; policy whenBusy=refuse`);
          waitedFor = r.holder;
          heartbeat({ waitingFor: r.holder, note: r.note });
          await sleep(poll);
          if (signal()?.aborted) throw new CancelledFailure('lock wait cancelled');
        }
      });
    },

    async releaseDeployLock(raw) {
      const input = check(deployLockInputSchema, raw, 'releaseDeployLock');
      return guarded(async () => ({ released: await cluster.releaseLease(input.target, leaseName(input.service), input.holder) }));
    },
  };
}

/** Temporal's view of a lock holder: a release that is no longer running cannot be holding an environment. */
export async function releaseIsRunning(holder: string): Promise<boolean> {
  try {
    const d = await Context.current().client.workflow.getHandle(holder).describe();
    return d.status.name === 'RUNNING';
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') return false;
    return true; // unknown: assume it is alive, never steal a lock on a guess
  }
}
