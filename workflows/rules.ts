/**
 * The patterns every name, version and reference must match, without zod: the schemas in config.ts build on them,
 * and the workflow checks its input with them (zod in the workflow bundle costs ~1 MB per cached workflow).
 */
export const NAME_RE = /^[a-z][a-z0-9-]*$/;
// A release version doubles as an image tag, so semver minus build metadata ("+" is not allowed in tags).
export const VERSION_RE = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;
export const IDENTITY_RE = /^[A-Za-z0-9][A-Za-z0-9._@+-]*$/;
export const REPO_PATH_RE = /^[A-Za-z0-9._/-]+$/;
const repoComponent = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
export const REPOSITORY_RE = new RegExp(`^${repoComponent}(?:/${repoComponent})*$`);
// host[:port]/path[:tag][@sha256:digest] — a fully qualified reference; no implicit Docker Hub.
export const IMAGE_REF_RE = new RegExp(
  `^[A-Za-z0-9.-]+(:[0-9]{1,5})?/${repoComponent}(?:/${repoComponent})*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`,
);

// Kube context names come from kubeconfigs (EKS ARNs hold ":" and "/"); never a path or a flag.
export const KUBE_CONTEXT_RE = /^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,252}$/;

/** Chart values slipway sets itself on every deploy; an override could deploy an image that was never scanned. */
export const RESERVED_VALUE_KEYS = ['image', 'slipway'];
export const reservedValueKeys = (values: unknown): string[] =>
  values && typeof values === 'object' ? Object.keys(values).filter((k) => RESERVED_VALUE_KEYS.includes(k)) : [];

/** A repo-relative path that cannot escape the repository. */
export const isSafeRepoPath = (p: string): boolean => REPO_PATH_RE.test(p) && !p.startsWith('/') && !p.split('/').includes('..');

interface InputShape {
  service?: unknown;
  version?: unknown;
  requester?: unknown;
  image?: unknown;
  build?: { context?: unknown; dockerfile?: unknown } | undefined;
  chart?: { path?: unknown } | undefined;
  environments?: { name?: unknown; repository?: unknown; deploy?: { target?: { context?: unknown; namespace?: unknown }; values?: unknown } }[];
}

/**
 * The workflow's own check of its input (the client has already validated it fully with zod; this catches a start
 * that bypassed the client). Returns the problems, each naming its field.
 */
export function releaseInputProblems(input: InputShape): string[] {
  const problems: string[] = [];
  const str = (v: unknown): v is string => typeof v === 'string';
  if (!str(input.service) || input.service.length > 63 || !NAME_RE.test(input.service)) problems.push('input.service: must be a service name');
  if (!str(input.version) || input.version.length > 128 || !VERSION_RE.test(input.version)) problems.push('input.version: must be a semantic version such as v1.0.2');
  if (!str(input.requester) || !IDENTITY_RE.test(input.requester)) problems.push('input.requester: must be a user name');
  if (Boolean(input.build) === Boolean(input.image)) problems.push('input.image: exactly one of build or image must be given');
  if (input.image !== undefined && (!str(input.image) || !IMAGE_REF_RE.test(input.image))) problems.push('input.image: must be a fully qualified image reference');
  if (input.build && (!str(input.build.context) || !isSafeRepoPath(input.build.context) || !str(input.build.dockerfile) || !isSafeRepoPath(input.build.dockerfile))) {
    problems.push('input.build: context and dockerfile must be paths inside the repository');
  }
  if (!Array.isArray(input.environments) || input.environments.length < 2) problems.push('input.environments: must list at least two environments');
  else
    input.environments.forEach((e, i) => {
      if (!str(e?.name) || !NAME_RE.test(e.name) || !str(e?.repository) || !REPOSITORY_RE.test(e.repository)) problems.push(`input.environments.${i}: needs a name and a repository`);
      const d = e?.deploy;
      if (!d) return;
      if (!input.chart) problems.push(`input.environments.${i}.deploy: the release has no chart`);
      if (!str(d.target?.context) || !KUBE_CONTEXT_RE.test(d.target.context) || !str(d.target?.namespace) || !NAME_RE.test(d.target.namespace)) {
        problems.push(`input.environments.${i}.deploy.target: needs a kube context name and a namespace`);
      }
      for (const k of reservedValueKeys(d.values)) problems.push(`input.environments.${i}.deploy.values.${k}: is set by slipway and cannot be overridden`);
    });
  if (input.chart && (!str(input.chart.path) || !isSafeRepoPath(input.chart.path))) problems.push('input.chart.path: must be a path inside the repository');
  return problems;
}
