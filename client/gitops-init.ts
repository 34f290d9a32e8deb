/**
 * `slipway gitops init`: the environment repository a new user starts from (issue #13) — base/ with the service's
 * Deployment and Service, overlays/<env>/kustomization.yaml with the `images:` entry Slipway pins by digest, and
 * flux/<env>.yaml with the GitRepository and Kustomization that apply that overlay in the environment's cluster.
 * Existing files are never overwritten: every path is checked before the first is written.
 * Also returns the `delivery:` section each environment needs in slipway.yaml (printed, not written: slipway.yaml
 * is the user's file).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { stringify } from 'yaml';
import type { SlipwayConfig } from '../model/config';
import { UsageError } from '../model/errors';

export interface GitopsInitOptions {
  service: string;
  environments: string[];
  /** The repository's URL as Flux clones it (and Slipway pushes to); a placeholder when not given. */
  repoUrl?: string;
  branch?: string;
  /** The port the service's container listens on. */
  port?: number;
  /** Where the GitRepository and Kustomization live (default flux-system). */
  fluxNamespace?: string;
  /** A Secret (in fluxNamespace) with username/password for a private repository: the GitRepository's secretRef. */
  secretName?: string;
  /** Per environment: a strategic-merge patch of the Deployment's pod spec (node placement, tolerations). */
  podPatch?: Record<string, Record<string, unknown>>;
  /** Per environment: the digest the overlay starts from (a release already there), else the image runs untagged. */
  initialDigest?: Record<string, string>;
}

export interface ScaffoldFile {
  /** Relative to the repository root. */
  path: string;
  text: string;
}

export const FLUX_NAMESPACE = 'flux-system';
const PLACEHOLDER_URL = 'https://git.example.com/team/environments.git';

const yamlDoc = (comment: string, value: unknown) => `${comment.split('\n').map((l) => `# ${l}`.trimEnd()).join('\n')}\n${stringify(value, { lineWidth: 0, aliasDuplicateObjects: false })}`;

/** The image an environment runs: its registry host and prefix before the service's repository. */
function environmentImage(config: SlipwayConfig, environment: string, repository: string): string {
  const env = config.environments[environment];
  const reg = config.registries[env.registry];
  return `${reg.type === 'oci' ? reg.url : reg.loginServer}/${env.imagePrefix}${repository}`;
}

export function gitopsLayout(config: SlipwayConfig, opts: GitopsInitOptions): { files: ScaffoldFile[]; delivery: Record<string, unknown> } {
  const svc = config.services[opts.service];
  if (!svc) throw new UsageError(`--service: "${opts.service}" is not a service in slipway.yaml (known: ${Object.keys(config.services).join(', ')})`);
  if (!opts.environments.length) throw new UsageError('--environments: name at least one environment, e.g. --environments qa,prod');
  for (const e of opts.environments) {
    if (!config.environments[e]) throw new UsageError(`--environments: "${e}" is not an environment in slipway.yaml (known: ${Object.keys(config.environments).join(', ')})`);
  }
  if (new Set(opts.environments).size !== opts.environments.length) throw new UsageError('--environments: an environment is named twice');
  const name = opts.service;
  // The base names the image as the service's repository; each overlay's images: entry maps it to the environment's.
  const baseImage = svc.repository ?? name;
  const port = opts.port ?? 8080;
  const labels = { 'app.kubernetes.io/name': name };
  const files: ScaffoldFile[] = [
    {
      path: 'base/kustomization.yaml',
      text: yamlDoc(`${name}: the manifests every environment shares (overlays/<env> pins the image).`, { apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: ['deployment.yaml', 'service.yaml'] }),
    },
    {
      path: 'base/deployment.yaml',
      text: yamlDoc(`The image is named ${baseImage} here: each overlay's images: entry sets the environment's registry and digest.`, {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name, labels },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: {
            // track: stable and the scrape annotations are what Slipway's canary copy and its metrics queries read.
            metadata: { labels: { ...labels, track: 'stable' }, annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': '/metrics' } },
            spec: {
              containers: [
                {
                  name,
                  image: baseImage,
                  ports: [{ name: 'http', containerPort: port }],
                  readinessProbe: { httpGet: { path: '/healthz', port: 'http' } },
                },
              ],
            },
          },
        },
      }),
    },
    {
      path: 'base/service.yaml',
      text: yamlDoc(`${name}'s Service.`, { apiVersion: 'v1', kind: 'Service', metadata: { name, labels }, spec: { selector: labels, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } }),
    },
  ];
  const delivery: Record<string, unknown> = {};
  const sourceName = `${name}-environments`;
  const fluxNamespace = opts.fluxNamespace ?? FLUX_NAMESPACE;
  for (const env of opts.environments) {
    const e = config.environments[env];
    const namespace = e.namespace ?? `${name}-${env}`;
    files.push({
      path: `overlays/${env}/kustomization.yaml`,
      text: yamlDoc(`${name} in ${env}. Slipway sets images[].digest on each release (by pull request or commit).`, {
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        namespace,
        resources: ['../../base'],
        images: [{ name: baseImage, newName: environmentImage(config, env, baseImage), ...(opts.initialDigest?.[env] ? { digest: opts.initialDigest[env] } : {}) }],
        ...(opts.podPatch?.[env]
          ? { patches: [{ target: { kind: 'Deployment', name }, patch: JSON.stringify({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name }, spec: { template: { spec: opts.podPatch[env] } } }) }] }
          : {}),
      }),
    });
    files.push({
      path: `flux/${env}.yaml`,
      text:
        yamlDoc(`Apply to ${env}'s cluster: Flux pulls this repository and applies overlays/${env}.`, {
          apiVersion: 'source.toolkit.fluxcd.io/v1',
          kind: 'GitRepository',
          metadata: { name: sourceName, namespace: fluxNamespace },
          spec: { interval: '1m', url: opts.repoUrl ?? PLACEHOLDER_URL, ref: { branch: opts.branch ?? 'main' }, ...(opts.secretName ? { secretRef: { name: opts.secretName } } : {}) },
        }) +
        '---\n' +
        stringify(
          {
            apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
            kind: 'Kustomization',
            metadata: { name: `${name}-${env}`, namespace: fluxNamespace },
            spec: { interval: '10m', path: `./overlays/${env}`, prune: true, wait: true, timeout: '5m', sourceRef: { kind: 'GitRepository', name: sourceName } },
          },
          { lineWidth: 0 },
        ),
    });
    delivery[env] = {
      type: 'gitops',
      repository: { url: opts.repoUrl ?? PLACEHOLDER_URL, branch: opts.branch ?? 'main', path: `overlays/${env}` },
      format: { type: 'kustomize', imageName: baseImage },
      merge: 'pull-request',
      forge: { type: 'gitea', tokenEnv: 'SLIPWAY_GITOPS_TOKEN' },
      flux: { namespace: fluxNamespace, gitRepository: sourceName, kustomization: `${name}-${env}` },
    };
  }
  return { files, delivery };
}

/** Writes the files under `dir`, or none of them when any already exists (named in the error). */
export function writeScaffold(dir: string, files: ScaffoldFile[]): string[] {
  const root = resolve(dir);
  const existing = files.map((f) => join(root, f.path)).filter((p) => existsSync(p));
  if (existing.length) throw new UsageError(`gitops init writes nothing over existing files: ${existing.join(', ')} (move them away or choose another --dir)`);
  const written: string[] = [];
  for (const f of files) {
    const path = join(root, f.path);
    mkdirSync(dirname(path), { recursive: true });
    // 'wx': a file that appeared since the check is still not overwritten.
    writeFileSync(path, f.text, { flag: 'wx' });
    written.push(path);
  }
  return written;
}
