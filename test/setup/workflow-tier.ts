/**
 * What the workflow tier needs, prepared once per jest run: a Temporal dev server (started if none answers) and the
 * workflow code bundled once, so each test file's worker starts fast. The whole stack's setup calls this too.
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ensureTemporal } from '../../client/stack';
import { BUNDLE_PATH, WORKFLOW_STACK_ENV, type WorkflowStack } from './stack-info';

const silent = { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} };

/** Both setups run in jest's main process; a run that selects both tiers prepares this once. */
const memo = globalThis as { slipwayWorkflowTier?: Promise<WorkflowStack> };

export function prepareWorkflowTier(): Promise<WorkflowStack> {
  memo.slipwayWorkflowTier ??= prepare();
  return memo.slipwayWorkflowTier;
}

async function prepare(): Promise<WorkflowStack> {
  process.env.PATH = `${process.env.HOME}/.cache/slipway/bin:${process.env.PATH}`;
  // One after the other: bundling blocks the event loop for seconds, and a port probe timing out meanwhile would
  // read a running server as absent.
  const temporal = await ensureTemporal();
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: silent as never });
  mkdirSync(dirname(BUNDLE_PATH), { recursive: true });
  // Written aside and renamed: a worker of another run reading the bundle never sees half of it.
  writeFileSync(`${BUNDLE_PATH}.${process.pid}`, code);
  renameSync(`${BUNDLE_PATH}.${process.pid}`, BUNDLE_PATH);
  const info: WorkflowStack = { temporal: temporal.address, bundlePath: BUNDLE_PATH };
  process.env[WORKFLOW_STACK_ENV] = JSON.stringify(info);
  return info;
}
