/**
 * Brings up the real local stack once for the suite (the same code as `slipway stack up`), plus a second registry
 * for cross-registry promotion, and bundles the workflow code once so each test file's worker starts fast.
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDocker, ensureRegistry, ensureTemporal } from '../../client/stack';
import { ensureClusters } from '../../client/stack/kubernetes';
import { dockerFromEnv } from '../../workers/builder';
import { ensureBaseImage } from '../../client/stack/base-image';
import { STACK_FILE, type TestStack } from './stack-info';

export default async function globalSetup(): Promise<void> {
  process.env.PATH = `${process.env.HOME}/.cache/slipway/bin:${process.env.PATH}`;
  const [temporal, docker, registry, registryB, clusters] = await Promise.all([
    ensureTemporal(),
    ensureDocker(),
    ensureRegistry('registry', 5000),
    ensureRegistry('registry-b', 5001),
    ensureClusters(),
  ]);
  await ensureBaseImage(dockerFromEnv({ DOCKER_HOST: docker.host }));
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} } as any });
  mkdirSync(join(__dirname, '..', '..', '.slipway'), { recursive: true });
  const bundlePath = join(__dirname, '..', '..', '.slipway', 'workflow-bundle.js');
  writeFileSync(bundlePath, code);
  // A Trivy database of our own advisories (the real one cannot be downloaded here), written by trivy-db's code.
  const trivyCache = join(__dirname, '..', '..', '.slipway', 'trivy-cache');
  execFileSync(join(process.env.HOME!, '.cache', 'slipway', 'bin', 'trivy-fixture-db'), ['-advisories', join(__dirname, '..', 'fixtures', 'trivy', 'advisories.json'), '-cache-dir', trivyCache], { stdio: 'ignore' });
  const info: TestStack = { temporal: temporal.address, docker: docker.host, registry, registryB, bundlePath, trivyCache, kubeconfig: clusters.kubeconfig, contexts: clusters.contexts };
  writeFileSync(STACK_FILE, JSON.stringify(info), { mode: 0o600 });
}
