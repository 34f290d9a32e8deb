/**
 * An environment repository on the local stack's Gitea, applied by its Flux (issue #13): what `slipway dev --gitops`,
 * the GitOps release tests and the GitOps bench start from. The layout is `slipway gitops init`'s (client/gitops-init.ts)
 * pushed as the first commit of a private repository owned by the stack's admin, with the reviewer as a collaborator
 * (the second person who merges); per environment, its cluster gets the namespace, a Secret with the admin's token for
 * Flux, and the GitRepository and Kustomization of the layout's flux/<env>.yaml. Idempotent: an existing repository
 * keeps its history, and the Flux objects are server-side applied.
 * Tokens reach git through its environment (client/stack's gitEnv: an extra header), never a URL or argv.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import type { SlipwayConfig } from '../../model/config';
import type { GitopsDeliveryInput } from '../../model/gitops';
import { gitEnv } from '../../activities/gitops/git';
import { gitopsLayout } from '../gitops-init';
import type { GitopsEndpoint } from './flux';
import { stackClients } from './crds';

const run = promisify(execFile);

export interface GitopsEnvironmentOptions {
  gitops: GitopsEndpoint;
  kubeconfig: string;
  /** slipway.yaml's environments (kubeContext, namespace, registry) and the service. */
  config: SlipwayConfig;
  service: string;
  environments: string[];
  /** The repository's name under the stack's admin. */
  repository: string;
  /** Where the Flux objects and their Secret live in each cluster (default flux-system). */
  fluxNamespace?: string;
  /** The workers' environment variable that will hold the forge token (written into the delivery sections). */
  tokenEnv?: string;
  merge?: 'direct' | 'pull-request' | 'auto-merge';
  /** Passed to the layout: per-environment pod placement, and the digest each overlay starts from. */
  podPatch?: Record<string, Record<string, unknown>>;
  initialDigest?: Record<string, string>;
  /** The GitRepository's poll interval (default 1m): what a merge waits for when nobody asks Flux to reconcile. */
  interval?: string;
  /** Per environment: how long Flux waits for the applied objects to be healthy before it reports failure (default 5m). */
  applyTimeout?: Record<string, string>;
}

export interface GitopsEnvironment {
  repoUrl: string;
  owner: string;
  repository: string;
  /** The first commit, when this call made it. */
  seeded?: string;
  /** Each environment's `delivery:` section for slipway.yaml. */
  delivery: Record<string, GitopsDeliveryInput>;
  /** Per environment: the Flux objects (namespace, GitRepository, Kustomization names) in its cluster. */
  flux: Record<string, { context: string; namespace: string; gitRepository: string; kustomization: string }>;
}

/** Gitea's API as one of the stack's users. */
export async function giteaApi<T>(gitops: GitopsEndpoint, user: 'admin' | 'reviewer', method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`${gitops.gitea.url}/api/v1${path}`, {
    method,
    headers: { Authorization: `token ${gitops.gitea[user].token}`, 'Content-Type': 'application/json', Accept: 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

async function must<T>(p: Promise<{ status: number; body: T }>, what: string, ok: (s: number) => boolean = (s) => s < 300): Promise<T> {
  const r = await p;
  if (!ok(r.status)) throw new Error(`Gitea: ${what}: HTTP ${r.status} ${JSON.stringify(r.body)?.slice(0, 300)}`);
  return r.body;
}

export async function ensureGitopsEnvironment(o: GitopsEnvironmentOptions): Promise<GitopsEnvironment> {
  const { gitops } = o;
  const owner = gitops.gitea.admin.username;
  const repoUrl = `${gitops.gitea.url}/${owner}/${o.repository}.git`;
  const fluxNamespace = o.fluxNamespace ?? 'flux-system';
  const secretName = `${o.repository}-git`;
  const { files, delivery } = gitopsLayout(o.config, { service: o.service, environments: o.environments, repoUrl, branch: 'main', fluxNamespace, secretName, podPatch: o.podPatch, initialDigest: o.initialDigest });

  // The repository, private, with the reviewer allowed to merge.
  const existing = await giteaApi<{ empty?: boolean }>(gitops, 'admin', 'GET', `/repos/${owner}/${o.repository}`);
  if (existing.status === 404) await must(giteaApi(gitops, 'admin', 'POST', '/user/repos', { name: o.repository, private: true, auto_init: false, default_branch: 'main' }), `create ${o.repository}`);
  await must(giteaApi(gitops, 'admin', 'PUT', `/repos/${owner}/${o.repository}/collaborators/${gitops.gitea.reviewer.username}`, { permission: 'write' }), 'add the reviewer');
  let seeded: string | undefined;
  if (existing.status === 404 || existing.body?.empty) seeded = await pushLayout(repoUrl, gitops.gitea.admin.token, files);

  // Flux in each environment's cluster.
  const flux: GitopsEnvironment['flux'] = {};
  for (const env of o.environments) {
    const e = o.config.environments[env];
    if (!e.kubeContext || !e.namespace) throw new Error(`environments.${env}: kubeContext and namespace are needed for gitops delivery`);
    const { k8s, core, custom } = await stackClients(o.kubeconfig, e.kubeContext);
    for (const ns of new Set([fluxNamespace, e.namespace])) {
      await core.createNamespace({ body: { metadata: { name: ns } } }).catch((err: { code?: number }) => {
        if (err?.code !== 409) throw err;
      });
    }
    const secret = { metadata: { name: secretName, namespace: fluxNamespace }, type: 'Opaque', stringData: { username: owner, password: gitops.gitea.admin.token } };
    await core.createNamespacedSecret({ namespace: fluxNamespace, body: secret }).catch(async (err: { code?: number }) => {
      if (err?.code !== 409) throw err;
      await core.replaceNamespacedSecret({ name: secretName, namespace: fluxNamespace, body: secret });
    });
    const docs = parseAllDocuments(files.find((f) => f.path === `flux/${env}.yaml`)!.text).map((d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string; namespace: string }; spec: Record<string, unknown> });
    for (const doc of docs) {
      if (doc.kind === 'GitRepository') doc.spec = { ...doc.spec, interval: o.interval ?? '1m', timeout: '20s' };
      if (doc.kind === 'Kustomization' && o.applyTimeout?.[env]) doc.spec = { ...doc.spec, timeout: o.applyTimeout[env] };
      const [group, version] = doc.apiVersion.split('/');
      const plural = doc.kind === 'GitRepository' ? 'gitrepositories' : 'kustomizations';
      await custom.patchNamespacedCustomObject(
        { group, version, plural, namespace: fluxNamespace, name: doc.metadata.name, body: doc, fieldManager: 'slipway-stack', force: true },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply),
      );
    }
    const d = delivery[env] as { flux: { gitRepository: string; kustomization: string } };
    flux[env] = { context: e.kubeContext, namespace: fluxNamespace, gitRepository: d.flux.gitRepository, kustomization: d.flux.kustomization };
  }
  const sections = Object.fromEntries(
    Object.entries(delivery).map(([env, d]) => [env, { ...(d as GitopsDeliveryInput), merge: o.merge ?? 'pull-request', forge: { type: 'gitea' as const, tokenEnv: o.tokenEnv ?? 'SLIPWAY_GITOPS_TOKEN' } }]),
  );
  return { repoUrl, owner, repository: o.repository, ...(seeded ? { seeded } : {}), delivery: sections, flux };
}

/** Commits the layout as the first commit of `main` and pushes it; returns the commit. */
async function pushLayout(repoUrl: string, token: string, files: { path: string; text: string }[]): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'slipway-envrepo-'));
  try {
    for (const f of files) {
      mkdirSync(dirname(join(work, f.path)), { recursive: true });
      writeFileSync(join(work, f.path), f.text);
    }
    const env = gitEnv(repoUrl, token);
    const git = async (...args: string[]) => (await run('git', ['-C', work, '-c', 'user.name=Slipway', '-c', 'user.email=slipway@slipway.invalid', ...args], { env })).stdout.trim();
    await git('init', '-q', '-b', 'main');
    await git('add', '-A');
    await git('commit', '-q', '-m', 'Environment repository (slipway gitops init)');
    await git('push', '-q', repoUrl, 'HEAD:refs/heads/main');
    return await git('rev-parse', 'HEAD');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Deletes what ensureGitopsEnvironment made: the Flux objects first (their finalizers prune what they applied), then the repository. */
export async function removeGitopsEnvironment(gitops: GitopsEndpoint, kubeconfig: string, env: GitopsEnvironment): Promise<void> {
  for (const f of Object.values(env.flux)) {
    const { custom, core } = await stackClients(kubeconfig, f.context);
    await custom.deleteNamespacedCustomObject({ group: 'kustomize.toolkit.fluxcd.io', version: 'v1', plural: 'kustomizations', namespace: f.namespace, name: f.kustomization }).catch(() => undefined);
    await custom.deleteNamespacedCustomObject({ group: 'source.toolkit.fluxcd.io', version: 'v1', plural: 'gitrepositories', namespace: f.namespace, name: f.gitRepository }).catch(() => undefined);
    await core.deleteNamespacedSecret({ name: `${env.repository}-git`, namespace: f.namespace }).catch(() => undefined);
  }
  await giteaApi(gitops, 'admin', 'DELETE', `/repos/${env.owner}/${env.repository}`).catch(() => undefined);
}
