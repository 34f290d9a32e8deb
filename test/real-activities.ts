/** The real activities, as a worker builds them, pointed at the test stack (Docker, registries, fixture Trivy DB). */
import { createBuilderActivities, createRegistryActivities, createScanActivities } from '../activities';
import type { SlipwayActivities } from '../activities/contract';
import { DockerImageBuilder } from '../activities/docker/builder';
import type { CredentialStore } from '../activities/registry/credentials';
import { registryFactory } from '../activities/registry/factory';
import { TrivyScanner, trivyOptionsFromEnv, type TrivyOptions } from '../activities/scanner/trivy';
import { dockerFromEnv } from '../workers/builder';
import { ROOT } from './helpers';
import { testStack } from './setup/stack-info';

export function realActivities(credentials: CredentialStore, hostId: string, trivy: Partial<TrivyOptions> = {}): SlipwayActivities {
  const stack = testStack();
  const docker = dockerFromEnv({ DOCKER_HOST: stack.docker });
  const scanner = new TrivyScanner({ ...trivyOptionsFromEnv({ ...process.env, DOCKER_HOST: stack.docker }), cacheDir: stack.trivyCache, timeoutMs: 120_000, ...trivy }, credentials);
  return {
    ...createBuilderActivities({ builder: new DockerImageBuilder(docker, credentials), hostId, workspace: ROOT }),
    ...createRegistryActivities({ registries: registryFactory({ credentials }) }),
    ...createScanActivities({ scanner }),
  };
}
