/**
 * The integration and e2e tiers' globalSetup: brings up the real local stack once for the run (the same code as
 * `slipway stack up`), plus a second registry for cross-registry promotion, and what the workflow tier needs
 * (Temporal and the workflow bundle, see workflow-tier.ts).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDocker, ensureRegistry, ensureTemporal } from '../../client/stack';
import { ensureClusters } from '../../client/stack/kubernetes';
import { dockerFromEnv } from '../../workers/builder';
import { ensureBaseImage } from '../../client/stack/base-image';
import { STACK_FILE, type TestStack } from './stack-info';
import { prepareWorkflowTier } from './workflow-tier';

export default async function globalSetup(): Promise<void> {
  process.env.PATH = `${process.env.HOME}/.cache/slipway/bin:${process.env.PATH}`;
  const [, docker, registry, registryB, clusters] = await Promise.all([
    ensureTemporal(),
    ensureDocker(),
    ensureRegistry('registry', 5000),
    ensureRegistry('registry-b', 5001),
    ensureClusters(),
  ]);
  await ensureBaseImage(dockerFromEnv({ DOCKER_HOST: docker.host }));
  // After the probes above: bundling blocks the event loop (Temporal is up by now, so its second check is quick).
  const { temporal, bundlePath } = await prepareWorkflowTier();
  // A Trivy database of our own advisories (the real one cannot be downloaded here), written by trivy-db's code.
  const trivyCache = join(__dirname, '..', '..', '.slipway', 'trivy-cache');
  execFileSync(join(process.env.HOME!, '.cache', 'slipway', 'bin', 'trivy-fixture-db'), ['-advisories', join(__dirname, '..', 'fixtures', 'trivy', 'advisories.json'), '-cache-dir', trivyCache], { stdio: 'ignore' });
  const info: TestStack = { temporal, docker: docker.host, registry, registryB, bundlePath, trivyCache, kubeconfig: clusters.kubeconfig, contexts: clusters.contexts };
  writeFileSync(STACK_FILE, JSON.stringify(info), { mode: 0o600 });
}
