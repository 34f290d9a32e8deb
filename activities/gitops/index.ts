/**
 * GitOps adapters for one environment's delivery section: its environment repository (git.ts) and its forge
 * (forge/). Both read the token from the workers' environment variable `forge.tokenEnv`, here and nowhere else.
 */
import type { GitopsDelivery } from '../../model/gitops';
import { GitEnvironmentRepository, type GitRepositoryOptions } from './git';
import { forgeFor, forgeToken } from './forge';
import type { EnvironmentRepository, Forge } from './ports';

export type { EnvironmentRepository, Forge } from './ports';

export function environmentRepositoryFor(delivery: GitopsDelivery, env: NodeJS.ProcessEnv = process.env, extra: Partial<GitRepositoryOptions> = {}): EnvironmentRepository {
  return new GitEnvironmentRepository({ url: delivery.repository.url, branch: delivery.repository.branch, path: delivery.repository.path, format: delivery.format, token: forgeToken(delivery, env), ...extra });
}

export function gitopsAdapters(delivery: GitopsDelivery, env: NodeJS.ProcessEnv = process.env): { repository: EnvironmentRepository; forge: Forge } {
  return { repository: environmentRepositoryFor(delivery, env), forge: forgeFor(delivery, env) };
}
