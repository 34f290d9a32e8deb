import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { RegistryEndpoint } from '../../client/stack';

const STATE = join(__dirname, '..', '..', '.slipway');
/** Written by the whole stack's setup (integration and e2e tiers). */
export const STACK_FILE = join(STATE, 'test-stack.json');
/**
 * The workflow tier's setup describes what it prepared in this variable of jest's process (test workers are
 * started after it and inherit it) rather than in a file, so runs on different Temporal servers do not cross.
 */
export const WORKFLOW_STACK_ENV = 'SLIPWAY_WORKFLOW_STACK';
export const BUNDLE_PATH = join(STATE, 'workflow-bundle.js');

export interface TestStack {
  temporal: string;
  docker: string;
  registry: RegistryEndpoint;
  registryB: RegistryEndpoint;
  bundlePath: string;
  /** Trivy cache dir holding the fixture vulnerability database. */
  trivyCache: string;
  /** The local kwok clusters: kubeconfig file and the context of each environment (qa, prod). */
  kubeconfig: string;
  contexts: Record<string, string>;
  /** The stack's Prometheus (client/stack/prometheus.ts): pods of the real nodes (job `pods`) and the routers (job `router`). */
  prometheus: { url: string };
}

/** What the workflow tier needs: a Temporal server and the bundled workflow code. */
export type WorkflowStack = Pick<TestStack, 'temporal' | 'bundlePath'>;

/** Without the variable (a run whose globalSetup was replaced), the whole stack's file serves. */
export function workflowStack(): WorkflowStack {
  const described = process.env[WORKFLOW_STACK_ENV];
  return JSON.parse(described ?? readFileSync(STACK_FILE, 'utf8'));
}

/**
 * The whole stack as its setup described it. A workflow-tier run on a machine that never brought the stack up has
 * no such file: its activities are mocked, so the configurations it writes (deploy-helpers) only need names, and
 * the registry and cluster context names below are ones nothing dials.
 */
export function testStack(): TestStack {
  if (existsSync(STACK_FILE)) return JSON.parse(readFileSync(STACK_FILE, 'utf8'));
  const unused: RegistryEndpoint = { url: '127.0.0.1:5000', username: 'unused', password: 'unused', started: false };
  return { ...workflowStack(), docker: 'unused', registry: unused, registryB: { ...unused, url: '127.0.0.1:5001' }, trivyCache: 'unused', kubeconfig: 'unused', contexts: { qa: 'kwok-slipway-qa', prod: 'kwok-slipway-prod' }, prometheus: { url: 'http://127.0.0.1:19099' } };
}

/** The Java time-skipping test server's launcher that scripts/install.sh puts in ~/.cache/slipway. */
export function timeSkippingServer(): string {
  const path = join(process.env.SLIPWAY_HOME ?? join(homedir(), '.cache', 'slipway'), 'temporal-test-server', 'temporal-test-server');
  if (!existsSync(path)) throw new Error(`no time-skipping test server at ${path}: run scripts/install.sh (it fetches io.temporal:temporal-test-server from Maven Central)`);
  return path;
}
