/** The proxy for reading the release plan from the workers' configuration: quick, and bounded like every other. */
import { proxyActivities } from '@temporalio/workflow';
import type { SlipwayActivities } from '../activities/contract';
import { retry } from './proxies';

export const planActs = proxyActivities<Pick<SlipwayActivities, 'resolveRelease'>>({
  startToCloseTimeout: '1m',
  scheduleToCloseTimeout: '10m',
  retry: { ...retry, maximumAttempts: 5 },
});
