/**
 * The patterns every name, version and reference must match, without zod: the schemas in config.ts build on them,
 * and the workflow checks its input with them (zod in the workflow bundle costs ~1 MB per cached workflow).
 */
// A DNS-1123 label's shape (Kubernetes object names, Helm release names): no trailing "-".
export const NAME_RE = /^[a-z]([a-z0-9-]*[a-z0-9])?$/;
/**
 * A service is the Helm release name (at most 53 characters: Helm stores it in a Secret named
 * sh.helm.release.v1.<name>.v<revision>), and its canary copies are `<name>-canary` (a Service name, at most 63).
 */
export const MAX_SERVICE_NAME = 53;
// A release version doubles as an image tag, so semver minus build metadata ("+" is not allowed in tags).
export const VERSION_RE = /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;
/**
 * The version is also the chart's appVersion, which charts put in the `app.kubernetes.io/version` label: a label
 * value is at most 63 characters and ends in a letter or digit (so no trailing "-" in the pre-release part).
 */
export const MAX_VERSION = 63;
export const versionProblem = (v: string): string | undefined =>
  v.length > MAX_VERSION
    ? `must be at most ${MAX_VERSION} characters (it becomes the app.kubernetes.io/version label of the deployed chart)`
    : !VERSION_RE.test(v)
      ? 'must be a semantic version such as v1.0.2 or 1.4.0-rc.1 (no build metadata)'
      : v.endsWith('-')
        ? 'must end in a letter or digit (it becomes the app.kubernetes.io/version label of the deployed chart)'
        : undefined;
export const IDENTITY_RE = /^[A-Za-z0-9][A-Za-z0-9._@+-]*$/;
export const REPO_PATH_RE = /^[A-Za-z0-9._/-]+$/;
const repoComponent = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
export const REPOSITORY_RE = new RegExp(`^${repoComponent}(?:/${repoComponent})*$`);
// An environment's image prefix: repository path components (the same grammar), each ending in "/".
export const REPOSITORY_PREFIX_RE = new RegExp(`^(?:${repoComponent}/)*$`);
/**
 * A registry host as Docker's reference grammar tells it from a path component: it holds a "." or a ":" (a port),
 * or is "localhost". Anything else ("library" in library/nginx) Docker reads as a Docker Hub repository path.
 */
const registryHost = '(?:localhost|[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)+|[A-Za-z0-9-]+(?=:))(?::[0-9]{1,5})?';
export const REGISTRY_HOST_RE = new RegExp(`^${registryHost}$`);
// host[:port]/path[:tag][@sha256:digest] — a fully qualified reference; no implicit Docker Hub.
export const IMAGE_REF_RE = new RegExp(
  `^${registryHost}/${repoComponent}(?:/${repoComponent})*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`,
);
/** Why a reference is not fully qualified, when the first component is a path rather than a registry host. */
export const imageHostProblem = (ref: string): string | undefined => {
  const first = ref.split('/')[0];
  return ref.includes('/') && !REGISTRY_HOST_RE.test(first) && /^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(first)
    ? `"${first}" is not a registry host (it has no "." or port and is not localhost, so Docker would read it as a Docker Hub path): a fully qualified reference is needed, e.g. docker.io/${ref}`
    : undefined;
};

/**
 * Canary traffic by replica ratio: the stable Deployment keeps its `stable` pods and the canary gets
 * ceil(stable × w / (100 − w)). A canary never runs more pods than the stable Deployment (a bigger one is a
 * second production, not a canary), so only weights up to 50 % can be expressed, in the steps r / (r + stable).
 */
export const canaryReplicasFor = (weight: number, stable: number): number => (weight <= 0 ? 0 : Math.ceil((stable * weight) / Math.max(1, 100 - weight)));
export const replicaWeight = (canary: number, stable: number): number => (canary ? Math.round((100 * canary) / (canary + stable)) : 0);
export const replicaWeights = (stable: number): number[] => Array.from({ length: Math.max(1, stable) }, (_, i) => replicaWeight(i + 1, Math.max(1, stable)));
export function replicaWeightProblem(weight: number, stable: number): string | undefined {
  const s = Math.max(1, stable);
  const needed = canaryReplicasFor(weight, s);
  if (needed <= s) return undefined;
  return `${weight} % cannot be expressed by replica ratio with ${s} stable replica${s === 1 ? '' : 's'}: it needs ${needed} canary pods, and a canary runs at most as many pods as the stable Deployment, so the weights it can express are ${replicaWeights(s).map((w) => `${w} %`).join(', ')} — use one of those, more replicas, or gateway-api/istio traffic`;
}

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
  if (!str(input.service) || input.service.length > MAX_SERVICE_NAME || !NAME_RE.test(input.service)) problems.push(`input.service: must be a service name of at most ${MAX_SERVICE_NAME} characters`);
  if (!str(input.version) || versionProblem(input.version)) problems.push(`input.version: ${str(input.version) ? versionProblem(input.version) : 'must be a semantic version such as v1.0.2'}`);
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
