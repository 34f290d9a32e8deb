/**
 * The gitops `delivery` section (model/gitops.ts): what it accepts, its defaults, and that every refusal names
 * the field and the rule it broke.
 */
import { gitopsDeliverySchema, gitopsIssues, parseGitopsDelivery, repoCoordinates } from '../../model/gitops';

const ok = {
  type: 'gitops',
  repository: { url: 'http://127.0.0.1:19300/slipway/environments.git', path: 'overlays/qa' },
  format: 'kustomize',
  merge: 'pull-request',
  forge: { type: 'gitea', tokenEnv: 'SLIPWAY_GITEA_TOKEN' },
};

const problems = (input: unknown): string => {
  const r = gitopsDeliverySchema.safeParse(input);
  if (r.success) throw new Error(`accepted: ${JSON.stringify(input)}`);
  return gitopsIssues(r.error);
};

describe('gitops delivery schema', () => {
  test('a minimal section parses, with the branch and format defaults', () => {
    expect(gitopsDeliverySchema.parse(ok)).toEqual({ ...ok, repository: { ...ok.repository, branch: 'main' }, format: { type: 'kustomize' } });
  });

  test('helm-release defaults to the image.repository / image.digest layout; manifest to the slipway:image marker', () => {
    expect(gitopsDeliverySchema.parse({ ...ok, format: 'helm-release' }).format).toEqual({ type: 'helm-release', repositoryKey: 'image.repository', digestKey: 'image.digest' });
    expect(gitopsDeliverySchema.parse({ ...ok, format: { type: 'helm-release', name: 'delivery', repositoryKey: 'app.image.repo', digestKey: 'app.image.digest', tagKey: 'app.image.tag' } }).format).toMatchObject({ repositoryKey: 'app.image.repo', tagKey: 'app.image.tag' });
    expect(gitopsDeliverySchema.parse({ ...ok, format: 'manifest' }).format).toEqual({ type: 'manifest', marker: 'slipway:image' });
  });

  test('GitHub and Azure Repos sections with reviews as approvals', () => {
    const gh = gitopsDeliverySchema.parse({ ...ok, repository: { url: 'https://github.com/team/environments.git', branch: 'prod', path: 'apps/delivery/release.yaml' }, format: 'helm-release', merge: 'auto-merge', forge: { type: 'github', tokenEnv: 'GITHUB_TOKEN' }, approvals: { fromReviews: true } });
    expect(gh.approvals).toEqual({ fromReviews: true, count: 1 });
    const az = gitopsDeliverySchema.parse({ ...ok, repository: { url: 'https://dev.azure.com/contoso/delivery/_git/environments', path: 'prod/deploy.yaml' }, format: 'manifest', forge: { type: 'azure-repos', tokenEnv: 'AZURE_DEVOPS_PAT' }, approvals: { fromReviews: true, count: 2 } });
    expect(az.forge.type).toBe('azure-repos');
  });

  test.each([
    [{ ...ok, format: 'helm' }, /^delivery\.format\.type: must be one of kustomize, helm-release, manifest/],
    [{ ...ok, format: { type: 'helm-release', repositoryKey: 'image', digestKey: 'image.digest' } }, /delivery\.format\.repositoryKey: "image" overlaps digestKey/],
    [{ ...ok, repository: { url: 'http://10.0.0.1/team/env.git', path: 'a' } }, /delivery\.repository\.url: must be https:\/\/ \(http:\/\/ only for 127\.0\.0\.1 or localhost\)/],
    [{ ...ok, repository: { url: 'https://x-access-token:ghp_secret@github.com/team/env.git', path: 'a' } }, /delivery\.repository\.url: must not carry credentials/],
    [{ ...ok, repository: { url: 'https://github.com/team/env.git', path: '../etc/passwd' } }, /delivery\.repository\.path: must not contain "\.\." or "\.git" segments/],
    [{ ...ok, repository: { url: 'https://github.com/team/env.git', path: '/abs' } }, /delivery\.repository\.path: must be relative/],
    [{ ...ok, repository: { url: 'https://github.com/team/env.git', path: 'a', branch: 'slipway/qa/x' } }, /delivery\.repository\.branch: must not be under slipway\//],
    [{ ...ok, repository: { url: 'https://github.com/team/env.git', path: 'a', branch: 'a..b' } }, /delivery\.repository\.branch: must be a valid Git branch name/],
    [{ ...ok, repository: { url: 'https://github.com/env.git', path: 'a' } }, /delivery\.repository\.url: must name <owner>\/<repository>/],
    [{ ...ok, forge: { type: 'azure-repos', tokenEnv: 'PAT' } }, /delivery\.repository\.url: must be an Azure Repos clone URL/],
    [{ ...ok, forge: { type: 'gitlab', tokenEnv: 'TOKEN' } }, /delivery\.forge\.type: must be one of gitea, github, azure-repos/],
    [{ ...ok, forge: { type: 'github', tokenEnv: 'ghp_16C7e42F292c6912E7710c838347Ae178B4a' } }, /delivery\.forge\.tokenEnv: must be the NAME of an environment variable/],
    [{ ...ok, forge: { type: 'github', tokenEnv: 'GIT_ASKPASS' } }, /delivery\.forge\.tokenEnv: must not be PATH/],
    [{ ...ok, merge: 'squash' }, /delivery\.merge: must be one of direct, pull-request, auto-merge/],
    [{ ...ok, merge: 'direct', approvals: { fromReviews: true } }, /delivery\.approvals: needs merge: pull-request or auto-merge/],
    [{ ...ok, approvals: { fromReviews: true, count: 0 } }, /delivery\.approvals\.count: must be at least 1/],
    [{ ...ok, approvals: { fromReviews: false } }, /delivery\.approvals\.fromReviews: must be true/],
    [{ ...ok, token: 'x' }, /delivery: Unrecognized key: "token"/],
  ])('refused with the field and the rule: %#', (input, message) => {
    expect(problems(input)).toMatch(message);
  });

  test('parseGitopsDelivery throws every problem, each on its own line under the given root', () => {
    expect(() => parseGitopsDelivery({ ...ok, merge: 'x', forge: { type: 'github', tokenEnv: 'lower' } }, 'environments.qa.delivery')).toThrow(/environments\.qa\.delivery\.merge: .*\nenvironments\.qa\.delivery\.forge\.tokenEnv: /s);
  });

  test('repoCoordinates reads owner and repository from a clone URL', () => {
    expect(repoCoordinates('https://github.com/team/env.git')).toEqual({ owner: 'team', repo: 'env' });
    expect(repoCoordinates('http://127.0.0.1:19300/gitea/sub/team/env/')).toEqual({ owner: 'team', repo: 'env' });
    expect(repoCoordinates('https://github.com/env')).toBeUndefined();
  });
});
