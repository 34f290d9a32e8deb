/**
 * Rolling a release back to the revision it replaced (or uninstalling what it installed), only when the top
 * revision is this run's own; a retry after a rollback that already happened, or a rollback its dead predecessor
 * left pending, is recognised from the history.
 */
import { rollbackInputSchema, type RollbackResult } from '../../model/types';
import { check, heartbeat } from '../common';
import type { SlipwayActivities } from '../contract';
import type { HelmRevision } from '../ports';
import { guarded } from './guarded';
import { abandonedAfter, markOf, settled, where, type DeployDeps, type Mark } from './shared';

export function createRollbackActivities(deps: DeployDeps): Pick<SlipwayActivities, 'rollbackDeploy'> {
  const { deployer } = deps;
  return {
    async rollbackDeploy(raw): Promise<RollbackResult> {
      const input = check(rollbackInputSchema, raw, 'rollbackDeploy');
      const { target, service: release } = input;
      return guarded(async () => {
        const ours = (m: Mark) => m.release === input.releaseId && m.run === input.runId;
        const isOwnRollback = async (h: HelmRevision[], r: HelmRevision) => {
          const before = h.find((x) => x.revision === r.revision - 1);
          return r.description === `Rollback to ${input.toRevision}` && before !== undefined && ours(markOf(await deployer.values(target, release, before.revision)));
        };
        // A rollback this run's earlier attempt started and whose Helm died with its worker stays pending for ever:
        // wait only the grace period for it, then roll back again (Helm allows a rollback over a pending revision).
        const first = await deployer.history(target, release);
        const own = first.at(-1)?.status === 'pending-rollback' && (await isOwnRollback(first, first.at(-1)!));
        const history = await settled(deps, target, release, own ? abandonedAfter(deps) : input.timeoutMs, heartbeat);
        const latest = history.at(-1);
        if (!latest) return { action: 'nothing-to-do', toRevision: input.toRevision, note: `${release} is not installed in ${where(target)}` };
        const mark = markOf(await deployer.values(target, release, latest.revision));
        if (latest.status === 'pending-rollback' && (await isOwnRollback(history, latest))) {
          await deployer.rollback(target, release, input.toRevision, input.timeoutMs, heartbeat);
          const now = (await deployer.history(target, release)).at(-1);
          return { action: 'rolled-back', toRevision: input.toRevision, revision: now?.revision, note: `${input.reason} — rolled back to revision ${input.toRevision} (again: revision ${latest.revision} was left pending)` };
        }
        if (!ours(mark)) {
          // A retry after a rollback that already happened finds the rollback revision on top of this release's.
          const done = !latest.status.startsWith('pending') && (await isOwnRollback(history, latest));
          if (done) return { action: 'rolled-back', toRevision: input.toRevision, revision: latest.revision, note: `revision ${latest.revision} restored revision ${input.toRevision}` };
          return {
            action: 'skipped',
            toRevision: input.toRevision,
            note: `revision ${latest.revision} in ${where(target)} was deployed by ${mark.release ?? 'someone else'}${mark.release === input.releaseId ? ` (run ${mark.run})` : ''}, not by this release: left alone`,
          };
        }
        if (input.toRevision === 0) {
          await deployer.uninstall(target, release, input.timeoutMs, heartbeat);
          return { action: 'uninstalled', toRevision: 0, note: `nothing was deployed before this release: ${release} uninstalled from ${where(target)}` };
        }
        await deployer.rollback(target, release, input.toRevision, input.timeoutMs, heartbeat);
        const now = (await deployer.history(target, release)).at(-1);
        return { action: 'rolled-back', toRevision: input.toRevision, revision: now?.revision, note: `${input.reason} — rolled back to revision ${input.toRevision}` };
      });
    },
  };
}
