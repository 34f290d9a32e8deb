/** Task queues. Build runs on the shared build queue; its result names the host queue the push must use. */
export const ORCHESTRATOR_QUEUE = 'slipway';
export const BUILD_QUEUE = 'slipway-build';
export const hostQueue = (hostId: string): string => `slipway-build@${hostId}`;
