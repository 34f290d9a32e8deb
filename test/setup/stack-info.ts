import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RegistryEndpoint } from '../../client/stack';

export const STACK_FILE = join(__dirname, '..', '..', '.slipway', 'test-stack.json');

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
}

export const testStack = (): TestStack => JSON.parse(readFileSync(STACK_FILE, 'utf8'));
