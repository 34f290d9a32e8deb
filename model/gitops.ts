/**
 * An environment's `delivery` section when the release is delivered through Git (issue #13): which environment
 * repository, branch and file carry the image, in which format, how the change lands (a direct commit, a pull
 * request that is itself the gate, or one merged by Slipway) and which forge serves the pull requests.
 * Not wired into the environment schema yet (model/config.ts adds `delivery:` beside `helm`).
 *
 * Imports only zod-free model/ rules, so model/config.ts can import this module without a cycle.
 * Secrets never appear here: `forge.tokenEnv` names the WORKERS' environment variable that holds the token.
 */
import { z } from 'zod';
import { REPO_PATH_RE } from './rules';

/** http:// is accepted only for a forge on this machine (the local stack's Gitea); everything else is https. */
const LOOPBACK_HTTP = /^http:\/\/(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?(\/|$)/;

function urlProblem(value: string): string | undefined {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return 'must be an absolute URL such as https://git.example.com/team/env.git';
  }
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && LOOPBACK_HTTP.test(value))) return 'must be https:// (http:// only for 127.0.0.1 or localhost)';
  // A URL is logged and recorded in history: a token in it would leak. Credentials come from forge.tokenEnv.
  if (u.username || u.password) return 'must not carry credentials (the token comes from forge.tokenEnv in the workers\' environment)';
  if (u.search || u.hash) return 'must not have a query or fragment';
  return undefined;
}

const urlSchema = z.string().max(2048, 'must be at most 2048 characters').superRefine((v, ctx) => {
  const problem = urlProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

// Git's own ref rules (git check-ref-format), narrowed to what a branch name in a config file needs.
const branchSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(200, 'must be at most 200 characters')
  .regex(/^[A-Za-z0-9._/-]+$/, 'may hold only letters, digits, ".", "_", "-" and "/"')
  .refine((b) => !b.startsWith('/') && !b.endsWith('/') && !b.includes('//') && !b.includes('..') && !b.endsWith('.lock') && !b.startsWith('-') && !b.split('/').some((s) => s.startsWith('.')), 'must be a valid Git branch name (no "..", "//", leading "-" or ".", trailing "/" or ".lock")')
  .refine((b) => !b.startsWith('slipway/') && !b.startsWith('slipway-revert/'), 'must not be under slipway/ or slipway-revert/ (Slipway\'s release branches)');

/** A file (or, for kustomize, a directory holding kustomization.yaml) inside the environment repository. */
const filePathSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(255, 'must be at most 255 characters')
  .regex(REPO_PATH_RE, 'may hold only letters, digits, ".", "_", "-" and "/"')
  .refine((p) => !p.startsWith('/'), 'must be relative to the repository root')
  .refine((p) => !p.split('/').includes('..') && !p.split('/').includes('.git'), 'must not contain ".." or ".git" segments');

// A key path inside a HelmRelease's spec.values, such as image.repository (the layout `helm create` charts read).
const valueKeySchema = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_-]{0,62}(\.[A-Za-z_][A-Za-z0-9_-]{0,62}){0,7}$/, 'must be a value path such as image.repository (keys of letters, digits, _ and -, joined by ".", at most 8)');

const k8sName = z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'must be a Kubernetes object name (lower-case letters, digits, "-" and ".")');

export const GITOPS_FORMATS = ['kustomize', 'helm-release', 'manifest'] as const;
export type GitopsFormatType = (typeof GITOPS_FORMATS)[number];

const kustomizeFormat = z.strictObject({
  type: z.literal('kustomize'),
  /** The `images:` entry's `name` (the image as the base manifests write it); default: the release's repository. */
  imageName: z.string().min(1).max(255).regex(/^[a-z0-9][a-z0-9._/:-]*$/, 'must be an image name as the base manifests write it').optional(),
});

const helmReleaseFormat = z
  .strictObject({
    type: z.literal('helm-release'),
    /** Which HelmRelease of the file, when it holds several. */
    name: k8sName.optional(),
    /** Paths under spec.values; the defaults are the layout of a `helm create` chart with a digest value. */
    repositoryKey: valueKeySchema.default('image.repository'),
    digestKey: valueKeySchema.default('image.digest'),
    /** Optional: also write the release's version here (charts that render repository:tag@digest). */
    tagKey: valueKeySchema.optional(),
  })
  .superRefine((f, ctx) => {
    const keys = [['repositoryKey', f.repositoryKey], ['digestKey', f.digestKey], ['tagKey', f.tagKey]].filter(([, v]) => v) as [string, string][];
    for (const [k, p] of keys) {
      const clash = keys.find(([k2, p2]) => k2 !== k && (p2 === p || p2.startsWith(`${p}.`)));
      if (clash) ctx.addIssue({ code: 'custom', path: [k], message: `"${p}" overlaps ${clash[0]} "${clash[1]}" (each value needs its own path)` });
    }
  });

const manifestFormat = z.strictObject({
  type: z.literal('manifest'),
  /** The comment that marks the image line(s) Slipway rewrites: `image: repo@sha256:… # slipway:image`. */
  marker: z.string().min(3).max(64).regex(/^[A-Za-z0-9._:/-]+$/, 'must be a word such as slipway:image (letters, digits, . _ : / -)').default('slipway:image'),
});

/** `format: kustomize` is short for `format: { type: kustomize }`. */
const formatSchema = z.preprocess(
  (v) => (typeof v === 'string' ? { type: v } : v),
  z.discriminatedUnion('type', [kustomizeFormat, helmReleaseFormat, manifestFormat], { error: `must be one of ${GITOPS_FORMATS.join(', ')} (or an object with that type)` }),
);

export const FORGE_TYPES = ['gitea', 'github', 'azure-repos'] as const;
export type ForgeType = (typeof FORGE_TYPES)[number];

export const MERGE_POLICIES = ['direct', 'pull-request', 'auto-merge'] as const;
export type MergePolicy = (typeof MERGE_POLICIES)[number];

const forgeSchema = z.strictObject({
  type: z.enum(FORGE_TYPES, { error: `must be one of ${FORGE_TYPES.join(', ')}` }),
  /** The workers' environment variable holding the token (never the token itself). */
  tokenEnv: z
    .string()
    .regex(/^[A-Z_][A-Z0-9_]{0,127}$/, 'must be the NAME of an environment variable (upper-case letters, digits, _), not a token')
    .refine((n) => !/^(PATH|HOME|USER|SHELL|GIT_.*)$/.test(n), 'must not be PATH, HOME, USER, SHELL or a GIT_* variable'),
  /**
   * The API root when it cannot be derived from the repository URL: GitHub Enterprise (https://host/api/v3),
   * a Gitea under a sub-path. Defaults: github.com → https://api.github.com; Gitea → <origin>/api/v1;
   * Azure Repos → https://dev.azure.com/<organisation>.
   */
  apiUrl: urlSchema.optional(),
});

const kubeObjectName = z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'must be a Kubernetes object name (lower-case letters, digits, "-" and ".")');

/** The Flux objects that apply this repository in the environment's cluster: the release waits on them. */
export const fluxRefsSchema = z.strictObject({
  namespace: kubeObjectName.default('flux-system'),
  /** The GitRepository (source) of the environment repository: annotated to reconcile at once. */
  gitRepository: kubeObjectName,
  /** The Kustomization (or the one applying the HelmRelease) whose lastAppliedRevision must reach the commit. */
  kustomization: kubeObjectName,
});
export type FluxRefs = z.infer<typeof fluxRefsSchema>;

export const gitopsDeliverySchema = z
  .strictObject({
    type: z.literal('gitops'),
    repository: z.strictObject({
      url: urlSchema,
      branch: branchSchema.default('main'),
      path: filePathSchema,
    }),
    format: formatSchema,
    merge: z.enum(MERGE_POLICIES, { error: `must be one of ${MERGE_POLICIES.join(', ')}` }),
    forge: forgeSchema,
    /** Required in slipway.yaml's environments (model/config.ts says so); optional here for the adapters' own use. */
    flux: fluxRefsSchema.optional(),
    /** The environment's approval rules may be met by the pull request's reviews instead of Slipway's approvals. */
    approvals: z
      .strictObject({
        fromReviews: z.literal(true, { error: 'must be true (leave approvals out to use Slipway\'s own approvals)' }),
        /** Distinct approving reviewers needed (the pull request's author never counts). */
        count: z.number().int('must be a whole number').min(1, 'must be at least 1').max(20, 'must be at most 20').default(1),
      })
      .optional(),
  })
  .superRefine((d, ctx) => {
    if (d.approvals && d.merge === 'direct') ctx.addIssue({ code: 'custom', path: ['approvals'], message: 'needs merge: pull-request or auto-merge (reviews exist only on a pull request)' });
    if (d.forge.type === 'azure-repos' && !/\/_git\/[^/]+\/?$/.test(safePath(d.repository.url))) ctx.addIssue({ code: 'custom', path: ['repository', 'url'], message: 'must be an Azure Repos clone URL such as https://dev.azure.com/<organisation>/<project>/_git/<repository>' });
    if (d.forge.type !== 'azure-repos' && repoCoordinates(d.repository.url) === undefined) ctx.addIssue({ code: 'custom', path: ['repository', 'url'], message: 'must name <owner>/<repository> after the host, such as https://github.com/team/env.git' });
  });

export type GitopsDelivery = z.infer<typeof gitopsDeliverySchema>;
export type GitopsDeliveryInput = z.input<typeof gitopsDeliverySchema>;
export type GitopsFormat = GitopsDelivery['format'];

const safePath = (url: string): string => {
  try {
    return new URL(url).pathname;
  } catch {
    return '';
  }
};

/** owner/repository from a GitHub or Gitea clone URL (the last two path segments, `.git` dropped). */
export function repoCoordinates(url: string): { owner: string; repo: string } | undefined {
  const parts = safePath(url).replace(/\/+$/, '').replace(/\.git$/, '').split('/').filter(Boolean);
  if (parts.length < 2) return undefined;
  return { owner: parts[parts.length - 2], repo: parts[parts.length - 1] };
}

/** One line per problem, naming the field (under `root`) and the rule it broke. */
export function gitopsIssues(error: z.ZodError, root = 'delivery'): string {
  return error.issues.map((i) => `${[root, ...i.path.map(String)].filter(Boolean).join('.')}: ${i.message}`).join('\n');
}

/** Parses a delivery section; throws an Error whose message lists every problem with its field. */
export function parseGitopsDelivery(input: unknown, root = 'delivery'): GitopsDelivery {
  const r = gitopsDeliverySchema.safeParse(input);
  if (!r.success) throw new Error(gitopsIssues(r.error, root));
  return r.data;
}
