/**
 * The forge for a gitops delivery section, by `forge.type` (one adapter per vendor behind the Forge port). The
 * token is read here from the workers' environment variable the section names; a missing one is a typed failure
 * naming the variable (never its value).
 */
import { repoCoordinates, type GitopsDelivery } from '../../../model/gitops';
import { gitopsError } from '../errors';
import type { Forge } from '../ports';
import { AzureReposForge } from './azure-repos';
import { GiteaForge } from './gitea';
import { GitHubForge } from './github';

export function forgeToken(delivery: GitopsDelivery, env: NodeJS.ProcessEnv = process.env): string {
  const token = env[delivery.forge.tokenEnv];
  if (!token) throw gitopsError('auth', delivery.repository.url, `the workers' environment has no ${delivery.forge.tokenEnv} (forge.tokenEnv)`);
  return token;
}

export function forgeFor(delivery: GitopsDelivery, env: NodeJS.ProcessEnv = process.env): Forge {
  const url = delivery.repository.url;
  const token = forgeToken(delivery, env);
  const u = new URL(url);
  switch (delivery.forge.type) {
    case 'github': {
      const { owner, repo } = repoCoordinates(url)!;
      return new GitHubForge({ apiUrl: delivery.forge.apiUrl ?? (u.host === 'github.com' ? 'https://api.github.com' : `${u.origin}/api/v3`), owner, repo, token, repository: url });
    }
    case 'gitea': {
      const { owner, repo } = repoCoordinates(url)!;
      // Gitea under a sub-path (https://host/git/owner/repo.git) needs forge.apiUrl; the default is <origin>/api/v1.
      return new GiteaForge({ apiUrl: delivery.forge.apiUrl ?? `${u.origin}/api/v1`, owner, repo, token, repository: url });
    }
    case 'azure-repos': {
      // https://dev.azure.com/<org>/<project>/_git/<repo> (the schema checks the shape).
      // https://<org>.visualstudio.com/<project>/_git/<repo> has the organisation in the host.
      const parts = u.pathname.split('/').filter(Boolean);
      const [project, repo] = [parts[parts.length - 3], parts[parts.length - 1]];
      const org = parts.length >= 4 ? `/${parts[parts.length - 4]}` : '';
      return new AzureReposForge({ apiUrl: delivery.forge.apiUrl ?? `${u.origin}${org}`, project: decodeURIComponent(project), repo: decodeURIComponent(repo), token, repository: url });
    }
  }
}
