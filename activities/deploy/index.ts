/**
 * Deploy activities: package the chart (chart.ts), capture what is deployed and `helm upgrade --install --wait` by
 * digest with resume and recovery (helm-deploy.ts), smoke test (smoke.ts), roll back (rollback.ts), and the
 * per-environment lock (locks.ts). Helm and Kubernetes failures reach Temporal through guarded.ts.
 */
import type { SlipwayActivities } from '../contract';
import { createHelmDeployActivities } from './helm-deploy';
import { createLockActivities } from './locks';
import { createRollbackActivities } from './rollback';
import type { DeployDeps } from './shared';
import { createSmokeActivities } from './smoke';

export { createChartActivities, escapingSymlinks, type ChartDeps } from './chart';
export { guarded } from './guarded';
export { releaseIsRunning } from './locks';
export type { DeployDeps } from './shared';

export function createDeployActivities(deps: DeployDeps): Pick<SlipwayActivities, 'inspectDeploy' | 'deployChart' | 'rollbackDeploy' | 'smokeTest' | 'acquireDeployLock' | 'releaseDeployLock'> {
  return { ...createHelmDeployActivities(deps), ...createRollbackActivities(deps), ...createSmokeActivities(deps), ...createLockActivities(deps) };
}
