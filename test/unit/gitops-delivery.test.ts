/**
 * GitOps delivery's configuration (issue #13): the `delivery` section's rules name their field, and the plan carries
 * the section without any token; the Flux adapter's judgement of a Kustomization and its bounded wait.
 */
import { parseConfig, planRelease } from '../../model/plan';
import { FluxController, judgeKustomization } from '../../activities/flux/flux';

const GITOPS = `
    delivery:
      type: gitops
      repository: { url: "https://git.example.com/team/env-prod.git", path: overlays/prod }
      format: kustomize
      merge: pull-request
      forge: { type: gitea, tokenEnv: GITEA_TOKEN }
      flux: { gitRepository: env-prod, kustomization: delivery }`;

const config = (prod: string) => `
registries:
  dev: { type: oci, url: "127.0.0.1:5000", insecure: true }
environments:
  qa: { registry: dev }
  prod:
    registry: dev
${prod}
services:
  delivery:
    build: { context: services/delivery }
`;

const problems = (text: string): string => {
  try {
    parseConfig(text);
    return '';
  } catch (err) {
    return (err as Error).message;
  }
};

describe('delivery configuration', () => {
  test('a gitops environment plans its delivery, Flux objects, target and smoke checks; no helm deploy, no token', () => {
    const plan = planRelease(parseConfig(config(`    kubeContext: kind-prod\n    namespace: web\n    approval: { approvers: [alice], timeout: 2h }${GITOPS}`)), { service: 'delivery', version: 'v1.0.0', requester: 'ci' });
    const prod = plan.environments[1];
    expect(prod.deploy).toBeUndefined();
    expect(plan.chart).toBeUndefined();
    expect(prod.gitops).toMatchObject({
      delivery: { type: 'gitops', merge: 'pull-request', repository: { branch: 'main' }, forge: { tokenEnv: 'GITEA_TOKEN' } },
      flux: { namespace: 'flux-system', gitRepository: 'env-prod', kustomization: 'delivery' },
      target: { context: 'kind-prod', namespace: 'web' },
      timeoutMs: 300_000,
      mergeTimeoutMs: 7_200_000,
    });
    expect(prod.gitops!.smoke.map((c) => c.type)).toEqual(['rollout', 'http']);
    expect(plan.environments[0].gitops).toBeUndefined();
  });

  test('a canary under gitops is accepted (Slipway\'s copy beside what Flux applied; promotion is the Git change)', () => {
    expect(problems(config(`    kubeContext: kind-prod\n    namespace: web\n    canary: { steps: [ { setWeight: 10 }, { analysis: { duration: 1m, interval: 30s } } ], traffic: { type: gateway-api, route: web }, prometheus: { url: "http://p" } }${GITOPS}`))).toBe('');
  });

  test('delivery type helm is today’s behaviour', () => {
    expect(problems(config('    delivery: { type: helm }'))).toBe('');
  });

  test.each([
    ['no cluster', GITOPS, 'environments.prod.delivery: type gitops needs kubeContext and namespace'],
    ['no flux objects', `    kubeContext: kind-prod\n    namespace: web${GITOPS.replace(/\n\s*flux:.*$/, '')}`, 'environments.prod.delivery.flux: is required with type gitops'],
    ['an unknown type', '    delivery: { type: argo }', 'environments.prod.delivery'],
    ['a token instead of its variable', `    kubeContext: kind-prod\n    namespace: web${GITOPS.replace('GITEA_TOKEN', 'ghp_abc123')}`, 'environments.prod.delivery.forge.tokenEnv: must be the NAME of an environment variable'],
    ['a bad Flux name', `    kubeContext: kind-prod\n    namespace: web${GITOPS.replace('env-prod, kustomization', 'Env_Prod, kustomization')}`, 'environments.prod.delivery.flux.gitRepository: must be a Kubernetes object name'],
  ])('%s is refused, naming the field', (_, prod, message) => {
    expect(problems(config(prod))).toContain(message);
  });
});

describe('Flux: when is a commit applied', () => {
  const C = 'a'.repeat(40);
  const ready = (status: string, reason = 'ReconciliationSucceeded', message = 'Applied revision') => [{ type: 'Ready', status, reason, message }];

  test('applied and ready; failed on this commit (Flux’s reason); pending otherwise', () => {
    expect(judgeKustomization({ lastAppliedRevision: `main@sha1:${C}`, conditions: ready('True') }, C).outcome).toBe('applied');
    expect(judgeKustomization({ lastAppliedRevision: 'main@sha1:old', lastAttemptedRevision: `main@sha1:${C}`, conditions: ready('False', 'HealthCheckFailed', 'timeout waiting for Deployment/web/delivery') }, C)).toEqual({
      outcome: 'failed',
      detail: 'Ready=False (HealthCheckFailed): timeout waiting for Deployment/web/delivery',
    });
    // An older revision failing is not this commit's failure.
    expect(judgeKustomization({ lastAppliedRevision: 'main@sha1:old', lastAttemptedRevision: 'main@sha1:older', conditions: ready('False') }, C).outcome).toBe('pending');
    expect(judgeKustomization({}, C).outcome).toBe('pending');
  });

  const fakeCluster = (statuses: object[], calls: string[]) => ({
    api: () =>
      ({
        patchNamespacedCustomObject: async (req: { name: string; body: { metadata: { annotations: Record<string, string> } } }) => {
          calls.push(`annotate:${req.name}:${Object.keys(req.body.metadata.annotations)[0]}`);
        },
        getNamespacedCustomObject: async (req: { name: string }) => {
          calls.push(`read:${req.name}`);
          return { status: statuses.length > 1 ? statuses.shift() : statuses[0] };
        },
      }) as never,
    call: <T>(_: unknown, __: string, fn: () => Promise<T>) => fn(),
  });
  const req = { target: { context: 'kind-prod', namespace: 'web' }, flux: { namespace: 'flux-system', gitRepository: 'env', kustomization: 'delivery' }, commit: C, timeoutMs: 1_000 };

  test('requests a reconcile on the GitRepository, then reads the Kustomization until the commit is applied, heartbeating', async () => {
    const calls: string[] = [];
    const beats: unknown[] = [];
    const flux = new FluxController(fakeCluster([{ lastAppliedRevision: 'main@sha1:old', conditions: ready('True') }, { lastAppliedRevision: `main@sha1:${C}`, conditions: ready('True') }], calls), 5);
    await expect(flux.waitApplied(req, (d) => beats.push(d))).resolves.toMatchObject({ revision: `main@sha1:${C}` });
    expect(calls).toEqual(['annotate:env:reconcile.fluxcd.io/requestedAt', 'read:delivery', 'read:delivery']);
    expect(beats).toHaveLength(1);
  });

  test('a failed reconcile of the commit fails at once with Flux’s message; a wait past the timeout fails too', async () => {
    const failing = new FluxController(fakeCluster([{ lastAppliedRevision: 'x', lastAttemptedRevision: `main@sha1:${C}`, conditions: ready('False', 'BuildFailed', 'kustomize build failed: missing resource') }], []), 5);
    await expect(failing.waitApplied(req, () => undefined)).rejects.toMatchObject({ type: 'FluxApplyFailedError', nonRetryable: true, message: expect.stringContaining('kustomize build failed: missing resource') });
    const stuck = new FluxController(fakeCluster([{ lastAppliedRevision: 'main@sha1:old', conditions: ready('True') }], []), 5);
    await expect(stuck.waitApplied({ ...req, timeoutMs: 30 }, () => undefined)).rejects.toMatchObject({ type: 'FluxApplyFailedError', message: expect.stringContaining('did not apply') });
  });
});

describe('gitops activities', () => {
  const { createGitopsActivities } = require('../../activities/gitops/activities') as typeof import('../../activities/gitops/activities');
  const delivery = parseConfig(config(`    kubeContext: kind-prod\n    namespace: web${GITOPS}`)).environments.prod.delivery as import('../../model/gitops').GitopsDelivery;
  const change = { workflowId: 'release:delivery:v1.0.0', environment: 'prod', service: 'delivery', version: 'v1.0.0', repository: '127.0.0.1:5000/prod/delivery', digest: `sha256:${'f'.repeat(64)}` };
  const seen: string[] = [];
  const acts = createGitopsActivities({
    flux: { waitApplied: async () => ({ revision: 'r', waitedMs: 0, requestedAt: '' }) },
    configured: () => [delivery],
    adapters: (d) => ({
      repository: { applyChange: async (c: { environment: string }, to: string) => (seen.push(`${d.repository.url} ${c.environment} ${to}`), { state: 'branch', branch: 'b', commit: 'c'.repeat(40), base: 'd'.repeat(40), reused: false }) } as never,
      forge: {} as never,
    }),
  });

  test('a delivery of the workers’ slipway.yaml is used; any other repository or token variable is refused before any adapter runs', async () => {
    await expect(acts.gitopsApplyChange({ delivery, change, to: 'branch' })).resolves.toMatchObject({ state: 'branch' });
    expect(seen).toEqual(['https://git.example.com/team/env-prod.git prod branch']);
    const elsewhere = { ...delivery, repository: { ...delivery.repository, url: 'https://evil.example.com/team/env-prod.git' } };
    await expect(acts.gitopsApplyChange({ delivery: elsewhere, change, to: 'branch' })).rejects.toMatchObject({ type: 'InvalidInputError', message: expect.stringContaining("is not a gitops delivery of the workers' slipway.yaml") });
    const otherToken = { ...delivery, forge: { ...delivery.forge, tokenEnv: 'AWS_SECRET_ACCESS_KEY' } };
    await expect(acts.gitopsApplyChange({ delivery: otherToken, change, to: 'branch' })).rejects.toMatchObject({ type: 'InvalidInputError' });
    expect(seen).toHaveLength(1);
  });

  test('inputs are checked at the boundary', async () => {
    await expect(acts.gitopsApplyChange({ delivery, change: { ...change, digest: 'latest' }, to: 'branch' })).rejects.toMatchObject({ type: 'InvalidInputError', message: expect.stringContaining('input.change.digest') });
  });
});
