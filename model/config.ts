/**
 * The `slipway.yaml` schema and the rules every name, path and reference must follow.
 * Pure (zod only): the CLI, the workers and the workflow share it, and it never touches the file system.
 */
import { z } from 'zod';
import { judgeConfigSchema } from './canary';
import { ROUTER_JUDGE, ROUTER_METRICS_TRAFFIC, routerQueries } from './canary-presets';
import { durationSchema, parseDuration } from './duration';
import { gitopsDeliverySchema } from './gitops';
import { smokeConfigSchema } from './smoke';
import {
  IDENTITY_RE,
  imageHostProblem,
  IMAGE_REF_RE,
  KUBE_CONTEXT_RE,
  MAX_SERVICE_NAME,
  NAME_RE,
  REGISTRY_HOST_RE,
  replicaWeightProblem,
  REPO_PATH_RE,
  REPOSITORY_PREFIX_RE,
  REPOSITORY_RE,
  RESERVED_VALUE_KEYS,
  versionProblem,
} from './rules';
import { parsePrincipal, SEVERITIES } from './identifiers';

export { durationSchema, parseDuration } from './duration';

// Names end up in image references, workflow ids, Helm release names and Kubernetes labels: keep them DNS-1123-ish.
export const nameSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(63, 'must be at most 63 characters')
  .regex(NAME_RE, 'must start with a lower-case letter, hold only a-z, 0-9 and "-", and not end in "-"');

/** A service name is its Helm release name, and `<name>-canary` names its canary's Deployment and Service. */
export const serviceNameSchema = nameSchema.max(MAX_SERVICE_NAME, `must be at most ${MAX_SERVICE_NAME} characters (it is the Helm release name, which Helm limits to ${MAX_SERVICE_NAME})`);

export const versionSchema = z.string().superRefine((v, ctx) => {
  const problem = versionProblem(v);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const gitShaSchema = z.string().regex(/^[0-9a-f]{7,40}$/, 'must be 7 to 40 lower-case hex digits');

export const identitySchema = z
  .string()
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .regex(IDENTITY_RE, 'must be a user name or e-mail address (letters, digits, . _ @ + -)');

// A path inside the repository: relative, no "..", no characters a shell or Docker would interpret.
export const repoPathSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(255, 'must be at most 255 characters')
  .regex(REPO_PATH_RE, 'may hold only letters, digits, ".", "_", "-" and "/"')
  .refine((p) => !p.startsWith('/'), 'must be relative to the repository root')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ".." segments');

export const registryHostSchema = z
  .string()
  .max(253, 'must be at most 253 characters')
  .regex(/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/, 'must be a host name with an optional port, e.g. myrepo.azurecr.io or 127.0.0.1:5000')
  // Image references are host/path: a host without "." or port (other than localhost) would read as a Docker Hub path.
  .refine((h) => !/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(h) || REGISTRY_HOST_RE.test(h), 'must contain a "." or a port, or be localhost (as Docker tells a registry host from a path), e.g. registry.local or registry:5000');

export const repositorySchema = z
  .string()
  .max(255, 'must be at most 255 characters')
  .regex(REPOSITORY_RE, 'must be an OCI repository path such as delivery or prod/delivery');

export const imageRefSchema = z
  .string()
  .max(512, 'must be at most 512 characters')
  .superRefine((ref, ctx) => {
    if (IMAGE_REF_RE.test(ref)) return;
    ctx.addIssue({
      code: 'custom',
      message: imageHostProblem(ref) ?? 'must be a fully qualified image reference such as 127.0.0.1:5000/delivery:v1.0.2 or …@sha256:<64 hex>',
    });
  });

export const digestSchema = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'must be sha256:<64 lower-case hex digits>');

export const kubeContextSchema = z
  .string()
  .regex(KUBE_CONTEXT_RE, 'must be a kube context name from the workers\' kubeconfig (letters, digits, . _ @ : / -)');

/** Helm values: plain data, at most 64 KB, and never the image (slipway deploys the release's digest). */
export const chartValuesSchema = z
  .record(z.string(), z.unknown())
  .superRefine((v, ctx) => {
    for (const k of Object.keys(v)) {
      if (RESERVED_VALUE_KEYS.includes(k)) {
        ctx.addIssue({ code: 'custom', path: [k], message: `is set by slipway on every deploy (the release's scanned digest and identity) and cannot be overridden` });
      }
    }
    if (JSON.stringify(v).length > 65_536) ctx.addIssue({ code: 'custom', message: 'must be at most 64 KB as JSON' });
  });

const ociRegistrySchema = z.strictObject({
  type: z.literal('oci'),
  url: registryHostSchema,
  insecure: z.boolean().default(false),
});

const acrRegistrySchema = z.strictObject({
  type: z.literal('acr'),
  loginServer: registryHostSchema,
  subscriptionId: z.string().regex(/^[0-9a-fA-F-]{36}$/, 'must be a subscription GUID'),
  resourceGroup: z.string().regex(/^[A-Za-z0-9._()-]{1,90}$/, 'must be an Azure resource group name'),
  registryName: z.string().regex(/^[A-Za-z0-9]{5,50}$/, 'must be 5 to 50 letters and digits'),
});

export const registryConfigSchema = z.discriminatedUnion('type', [ociRegistrySchema, acrRegistrySchema]);

// "alice" or "user:alice" names a person; "group:release-managers" names a group from `groups:`.
const principalSchema = z
  .string()
  .regex(/^((user|group):)?[A-Za-z0-9][A-Za-z0-9._@+-]*$/, 'must be a user ("alice" or "user:alice") or a group ("group:release-managers")');

export const approvalPolicySchema = z
  .strictObject({
    approvers: z.array(principalSchema).min(1, 'must name at least one approver'),
    minApprovals: z.number().int('must be a whole number').min(1, 'must be at least 1').max(10, 'must be at most 10').default(1),
    requesterCannotApprove: z.boolean().default(true),
    timeout: durationSchema.default('72h'),
    onTimeout: z.enum(['reject', 'approve']).default('reject'),
  });

const severitySchema = z
  .string()
  .transform((s) => s.toUpperCase())
  .pipe(z.enum(SEVERITIES, `must be one of ${SEVERITIES.join(', ').toLowerCase()}`));

export const scanPolicySchema = z.strictObject({
  failOn: severitySchema.default('HIGH'),
  onlyFixed: z.boolean().default(false),
  allow: z
    .array(
      z.strictObject({
        id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{2,63}$/, 'must be a vulnerability id such as CVE-2024-1234 or GHSA-xxxx-xxxx-xxxx'),
        reason: z.string().min(3, 'must say why (at least 3 characters)').max(500),
        expires: z
          .string()
          .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date, YYYY-MM-DD')
          // Date.parse rolls 2024-02-30 over to March 1: a real date is one that reads back the same.
          .refine((d) => { const t = Date.parse(`${d}T00:00:00Z`); return !Number.isNaN(t) && new Date(t).toISOString().slice(0, 10) === d; }, 'must be a real date'),
      }),
    )
    .default([]),
  rescanAfter: durationSchema.optional(),
});
export type ScanPolicyConfig = z.infer<typeof scanPolicySchema>;

/** A validated scan policy as the gate uses it (durations in milliseconds). */
export function scanPlanOf(p: ScanPolicyConfig): { failOn: ScanPolicyConfig['failOn']; onlyFixed: boolean; allow: ScanPolicyConfig['allow']; rescanAfterMs?: number } {
  return { failOn: p.failOn, onlyFixed: p.onlyFixed, allow: p.allow, ...(p.rescanAfter ? { rescanAfterMs: parseDuration(p.rescanAfter)! } : {}) };
}

export const deployConfigSchema = z.strictObject({
  timeout: durationSchema.default('5m'),
  whenBusy: z.enum(['wait', 'refuse']).default('wait'),
  busyTimeout: durationSchema.default('30m'),
  smoke: z.array(smokeConfigSchema).default([{ type: 'rollout' }, { type: 'http', url: 'http://{service}.{namespace}.svc/healthz', expectStatus: 200, timeout: '30s' }]),
});

const canaryStepSchema = z.union([
  z.strictObject({ setWeight: z.number().int('must be a whole percentage').min(1, 'must be at least 1').max(99, 'must be below 100 (promotion sends 100 %)') }),
  z.strictObject({ analysis: z.strictObject({ duration: durationSchema, interval: durationSchema }) }),
  // A pause with a duration ends by itself; without one it waits for a person (promote or skip) up to decisionTimeout.
  z.strictObject({ pause: z.strictObject({ duration: durationSchema.optional() }) }),
]);

export const MAX_CANARY_INTERVALS = 480;

/** The default judge (model/canary-presets.ts) with zod's defaults filled in, as a configured one would be. */
const routerJudge = () => judgeConfigSchema.parse(ROUTER_JUDGE);

export const canaryConfigSchema = z
  .strictObject({
    traffic: z
      .discriminatedUnion('type', [
        z.strictObject({ type: z.literal('replicas') }),
        z.strictObject({ type: z.literal('gateway-api'), route: nameSchema }),
        z.strictObject({ type: z.literal('istio'), virtualService: nameSchema }),
      ])
      .default({ type: 'replicas' }),
    prometheus: z
      .strictObject({
        url: z.string().url('must be a URL'),
        stepSeconds: z.number().int().min(1).max(3600).default(10),
        /**
         * Who answers the PromQL: a Prometheus server (the default) or an Azure Monitor workspace's managed
         * Prometheus, `url` then being the workspace's query endpoint (https://<workspace>.<region>.prometheus.monitor.azure.com).
         */
        type: z.enum(['prometheus', 'azure-monitor']).optional(),
        /**
         * azure-monitor: the Azure AD application that reads the workspace (role Monitoring Data Reader). Its
         * client secret is read from the workers' environment variable `clientSecretEnv`, never from this file.
         * Without this section the workers use DefaultAzureCredential (workload or managed identity on AKS).
         */
        azure: z
          .strictObject({
            tenantId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$/, 'must be a tenant id (GUID) or domain'),
            clientId: z.string().regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'must be an application (client) id, a GUID'),
            clientSecretEnv: z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name').default('SLIPWAY_AZURE_MONITOR_CLIENT_SECRET'),
            /** Sovereign clouds (https://login.microsoftonline.us); default Azure public cloud. */
            authorityHost: z.string().url('must be a URL').startsWith('https://', 'must be https').optional(),
          })
          .optional(),
      })
      .superRefine((p, ctx) => {
        if (p.azure && p.type !== 'azure-monitor') ctx.addIssue({ code: 'custom', path: ['azure'], message: 'is only for type: azure-monitor' });
        // A bearer token goes with every query.
        if (p.type === 'azure-monitor' && !p.url.startsWith('https://')) ctx.addIssue({ code: 'custom', path: ['url'], message: 'must be https for azure-monitor' });
      }),
    /**
     * One PromQL query per judged metric. `$track` becomes "baseline" or "canary", `$namespace` and `$service` the
     * release's namespace and service, `$backend` the track's Kubernetes Service (`<service>-stable` or
     * `<service>-canary`). Omitted with `judge` (or alone, with a judge of the default metrics' names): the router's
     * metrics (model/canary-presets.ts), for gateway-api traffic only.
     */
    queries: z.record(z.string().min(1).max(200), z.string().min(1).max(4000).refine((q) => /\$(track|backend)\b/.test(q), 'must use $track or $backend to tell baseline from canary')).optional(),
    judge: judgeConfigSchema.optional(),
    steps: z.array(canaryStepSchema).min(1, 'must list at least one step'),
    /** How long an inconclusive result or an open-ended pause waits for a person; then the canary is rolled back. */
    decisionTimeout: durationSchema.default('1h'),
  })
  .superRefine((c, ctx) => {
    if (!c.queries && !ROUTER_METRICS_TRAFFIC.includes(c.traffic.type as (typeof ROUTER_METRICS_TRAFFIC)[number])) {
      ctx.addIssue({
        code: 'custom',
        path: ['queries'],
        message: `is required with traffic.type ${c.traffic.type}: the default metrics are the router's (Traefik's per-service metrics), which only traffic.type ${ROUTER_METRICS_TRAFFIC.join(' or ')} has`,
      });
    } else if (c.queries && !c.judge) {
      ctx.addIssue({ code: 'custom', path: ['judge'], message: 'is required with canary.queries (the default judge goes with the default queries only)' });
    } else {
      const queries = c.queries ?? routerQueries(c.prometheus.stepSeconds);
      const judge = c.judge ?? routerJudge();
      judge.metrics.forEach((m, i) => {
        if (!queries[m.name]) ctx.addIssue({ code: 'custom', path: ['judge', 'metrics', i, 'name'], message: c.queries ? 'has no query in canary.queries' : `has no default query (canary.queries omitted: the default metrics are ${Object.keys(queries).join(', ')})` });
      });
      for (const q of Object.keys(c.queries ?? {})) {
        if (!judge.metrics.some((m) => m.name === q)) ctx.addIssue({ code: 'custom', path: ['queries', q], message: 'is not a metric of canary.judge.metrics' });
      }
    }
    let intervals = 0;
    c.steps.forEach((s, i) => {
      if (!('analysis' in s)) return;
      const d = parseDuration(s.analysis.duration)!;
      const iv = parseDuration(s.analysis.interval)!;
      if (iv > d) ctx.addIssue({ code: 'custom', path: ['steps', i, 'analysis', 'interval'], message: 'must not be longer than the duration' });
      intervals += Math.ceil(d / iv);
    });
    if (!c.steps.some((s) => 'analysis' in s)) ctx.addIssue({ code: 'custom', path: ['steps'], message: 'must include at least one analysis step' });
    // Each interval adds ~12 events and ~2.5 KiB (only its new points) to the history and its samples to the
    // workflow's memory (npm run bench -- canary-state); 480 intervals (8 h at 1 m) stay well inside Temporal's limits.
    if (intervals > MAX_CANARY_INTERVALS) ctx.addIssue({ code: 'custom', path: ['steps'], message: `add up to ${intervals} analysis intervals; at most ${MAX_CANARY_INTERVALS}` });
  })
  // Checked above: both present, or the router's defaults apply. The plan and the history carry the filled-in queries.
  .transform((c) => ({ ...c, queries: c.queries ?? routerQueries(c.prometheus.stepSeconds), judge: c.judge ?? routerJudge() }));
export type CanaryConfig = z.infer<typeof canaryConfigSchema>;

const helmDeliverySchema = z.strictObject({ type: z.literal('helm') });
export const deliveryConfigSchema = z.discriminatedUnion('type', [helmDeliverySchema, gitopsDeliverySchema], { error: 'type must be helm or gitops' });
export type DeliveryConfig = z.infer<typeof deliveryConfigSchema>;

export const environmentConfigSchema = z.strictObject({
  registry: nameSchema,
  /** Progressive delivery for this environment's deploys (needs kubeContext and a release already running there). */
  canary: canaryConfigSchema.optional(),
  /** The cluster (a context in the workers' kubeconfig) and namespace this environment deploys to. */
  kubeContext: kubeContextSchema.optional(),
  namespace: nameSchema.optional(),
  deploy: deployConfigSchema.prefault({}),
  imagePrefix: z
    .string()
    .regex(REPOSITORY_PREFIX_RE, 'must be empty or repository path segments ending in "/", e.g. prod/')
    .default(''),
  approval: approvalPolicySchema.optional(),
  /** The vulnerability policy an image must meet to land in (or be promoted into) this environment. */
  scan: scanPolicySchema.optional(),
  /**
   * How a release reaches the cluster: `helm` (the default: slipway installs the chart) or `gitops` (slipway commits
   * the digest to an environment repository, by pull request or directly, and waits for Flux to apply it).
   */
  delivery: deliveryConfigSchema.optional(),
});

const buildArgName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a build-arg name (letters, digits, _)');

// A Helm value path such as app.image.tag: dot-separated keys, no index syntax, at most 8 deep.
const valuePathSchema = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_-]{0,62}(\.[A-Za-z_][A-Za-z0-9_-]{0,62}){0,7}$/, 'must be a Helm value path such as app.image.tag (keys of letters, digits, _ and -, joined by ".", at most 8)')
  .refine((p) => p.split('.')[0] !== 'slipway', 'must not be under "slipway" (slipway\'s own marks)');

/**
 * Where a chart reads its image, for charts that do not use image.repository/image.tag/image.digest. `registry`
 * (optional) splits the host off the repository; at least one of tag and digest is needed to pin the digest.
 */
export const imageValuesSchema = z
  .strictObject({ registry: valuePathSchema.optional(), repository: valuePathSchema, tag: valuePathSchema.optional(), digest: valuePathSchema.optional() })
  .superRefine((m, ctx) => {
    if (!m.tag && !m.digest) ctx.addIssue({ code: 'custom', message: 'needs a tag or a digest path (slipway pins the image through one of them)' });
    const paths = Object.entries(m).filter(([, p]) => p) as [string, string][];
    for (const [k, p] of paths) {
      const clash = paths.find(([k2, p2]) => k2 !== k && (p2 === p || p2.startsWith(`${p}.`)));
      if (clash) ctx.addIssue({ code: 'custom', path: [k], message: `"${p}" overlaps ${clash[0]} "${clash[1]}" (each value needs its own path)` });
    }
  });

export const serviceConfigSchema = z.strictObject({
  repository: repositorySchema.optional(),
  chart: z
    .strictObject({
      path: repoPathSchema,
      /** The OCI repository the packaged chart is pushed to, in the first environment's registry. */
      repository: repositorySchema.optional(),
      values: chartValuesSchema.default({}),
      /** Per-environment values, merged over `values`. */
      environments: z.record(nameSchema, chartValuesSchema).default({}),
      /** The value paths this chart reads its image from (default: image.repository, image.tag, image.digest). */
      imageValues: imageValuesSchema.optional(),
    })
    .superRefine((c, ctx) => {
      // The mapped paths carry the release's digest: a values override of them could deploy an unscanned image.
      const paths = Object.values(c.imageValues ?? {}).filter(Boolean) as string[];
      const sets = (v: unknown, keys: string[]): boolean =>
        keys.length === 0 || (typeof v === 'object' && v !== null && keys[0] in v && sets((v as Record<string, unknown>)[keys[0]], keys.slice(1)));
      for (const [where, values] of [[['values'], c.values], ...Object.entries(c.environments).map(([e, v]) => [['environments', e], v])] as [string[], unknown][]) {
        for (const p of paths) if (sets(values, p.split('.'))) ctx.addIssue({ code: 'custom', path: [...where, ...p.split('.')], message: 'is set by slipway on every deploy (imageValues maps the release\'s image there) and cannot be overridden' });
      }
    })
    .optional(),
  source: z.string().url('must be a URL').max(512).optional(),
  build: z.strictObject({
    context: repoPathSchema,
    dockerfile: repoPathSchema.default('Dockerfile'),
    args: z.record(buildArgName, z.string().max(4096, 'must be at most 4096 characters')).default({}),
  }),
});

const headerName = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be an HTTP header name');
const ipSchema = z.string().regex(/^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]+)$/, 'must be an IP address');

/** The approvals UI: who the user is, and from where that may be believed. */
export const uiConfigSchema = z.strictObject({
  auth: z
    .strictObject({
      // local: a sign-in page with named users (demo, laptops); proxy: identity from an authenticating proxy's headers.
      mode: z.enum(['local', 'proxy']).default('local'),
      users: z.array(identitySchema).optional(),
      userHeader: headerName.default('X-Forwarded-User'),
      groupsHeader: headerName.default('X-Forwarded-Groups'),
      trustedProxies: z.array(ipSchema).default([]),
    })
    .default({ mode: 'local', userHeader: 'X-Forwarded-User', groupsHeader: 'X-Forwarded-Groups', trustedProxies: [] }),
  temporalWebUrl: z.string().url('must be a URL').optional(),
  session: z
    .strictObject({
      // Local-mode sign-ins end after this long; the expiry is inside the signed cookie, checked by the server.
      maxAge: durationSchema.default('8h'),
      // Signs sessions and CSRF tokens; created 0600 on first start. Default: $SLIPWAY_HOME/ui/session-secret.
      secretFile: z.string().min(1).max(1024).optional(),
    })
    .default({ maxAge: '8h' }),
  // Origins (scheme://host[:port]) besides the request's own Host that may POST, e.g. the proxy's public URL.
  allowedOrigins: z.array(z.string().regex(/^https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?$/, 'must be an origin such as https://slipway.example.com')).default([]),
  /**
   * CI identities the UI's token exchange (POST /api/decision-tokens) believes: OIDC identity tokens from these
   * issuers (GitHub Actions, Azure Pipelines, …), checked against their keys (JWKS), audience and lifetime.
   */
  oidc: z
    .array(
      z
        .strictObject({
          issuer: z.string().url('must be the issuer URL exactly as the tokens\' iss claim says'),
          audience: z.string().min(1).max(256),
          jwksUrl: z.string().url('must be a URL').optional(),
          jwksFile: z.string().min(1).max(1024).optional(),
          // Which claim names the person or pipeline: GitHub's `actor`, Azure's `sub`, …
          subjectClaim: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a claim name').default('sub'),
          groupsClaim: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a claim name').optional(),
          // Claims every token must carry with exactly these values: an issuer such as GitHub signs for every
          // repository in the world, so the organisation (repository_owner, …) must be pinned.
          requiredClaims: z
            .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a claim name'), z.string().min(1).max(256))
            .refine((o) => Object.keys(o).length > 0, 'must pin at least one claim, such as repository_owner: <your organisation> (otherwise every pipeline this issuer signs for is believed)'),
        })
        .refine((o) => Boolean(o.jwksUrl) !== Boolean(o.jwksFile), 'give exactly one of jwksUrl and jwksFile'),
    )
    .max(8)
    .default([]),
});
export type UiConfig = z.infer<typeof uiConfigSchema>;

/**
 * Who may decide: the edges whose signed decision tokens workflows accept. Their public keys are read by the workers
 * at each release's start and pinned into its history; a token from any other key is refused.
 */
const issuerSchema = z.strictObject({
  name: nameSchema,
  // An SPKI PEM file (on the workers) or the key itself (PEM, or base64 of the 32 raw Ed25519 bytes).
  publicKeyFile: z.string().min(1).max(1024).optional(),
  publicKey: z.string().min(1).max(4096).optional(),
});
export const identityConfigSchema = z
  .strictObject({
    issuers: z.array(issuerSchema).max(16).default([]),
    /**
     * Accept self-asserted identities (the CLI signs the OS user with a key on this machine). Only for the local
     * stack: anyone who can read that key file can be anyone.
     */
    local: z.boolean().default(false),
    // Where local-stack key pairs live when an issuer names neither publicKeyFile nor publicKey. Absolute (or ~/…),
    // so the workers, the CLI and the UI find the same files whatever their working directory.
    keyDir: z.string().min(1).max(1024).regex(/^(\/|~\/)/, 'must be an absolute path (or start with ~/)').optional(),
    /** How long a decision token stays valid after it is issued. */
    tokenTtl: durationSchema.default('5m'),
  })
  .superRefine((c, ctx) => {
    c.issuers.forEach((i, n) => {
      if (i.publicKey && i.publicKeyFile) ctx.addIssue({ code: 'custom', path: ['issuers', n], message: 'give publicKey or publicKeyFile, not both' });
    });
  });
export type IdentityConfig = z.infer<typeof identityConfigSchema>;

export const slipwayConfigSchema = z
  .strictObject({
    ui: uiConfigSchema.optional(),
    identity: identityConfigSchema.optional(),
    registries: z.record(nameSchema, registryConfigSchema).refine((r) => Object.keys(r).length > 0, 'must define at least one registry'),
    groups: z.record(nameSchema, z.array(identitySchema)).default({}),
    environments: z.record(nameSchema, environmentConfigSchema),
    // The order a release goes through; the first environment receives the pushed build.
    pipeline: z.array(nameSchema).min(2, 'must list at least two environments (where builds land, where they are promoted)').optional(),
    services: z.record(serviceNameSchema, serviceConfigSchema).refine((s) => Object.keys(s).length > 0, 'must define at least one service'),
  })
  .superRefine((cfg, ctx) => {
    for (const [env, e] of Object.entries(cfg.environments)) {
      if (!cfg.registries[e.registry]) {
        ctx.addIssue({ code: 'custom', path: ['environments', env, 'registry'], message: `names unknown registry "${e.registry}" (known: ${Object.keys(cfg.registries).join(', ')})` });
      }
      e.approval?.approvers.map(parsePrincipal).forEach((p, i) => {
        if (p.kind === 'group' && !cfg.groups[p.name]) {
          ctx.addIssue({ code: 'custom', path: ['environments', env, 'approval', 'approvers', i], message: `names unknown group "${p.name}"` });
        }
      });
    }
    if (cfg.ui?.auth.mode === 'proxy' && cfg.ui.auth.trustedProxies.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['ui', 'auth', 'trustedProxies'], message: 'must list the proxy addresses whose identity headers are believed' });
    }
    const order = cfg.pipeline ?? Object.keys(cfg.environments);
    if (order.length < 2) ctx.addIssue({ code: 'custom', path: ['environments'], message: 'must define at least two environments' });
    order.forEach((env, i) => {
      if (!cfg.environments[env]) ctx.addIssue({ code: 'custom', path: ['pipeline', i], message: `names unknown environment "${env}"` });
    });
    if (new Set(order).size !== order.length) ctx.addIssue({ code: 'custom', path: ['pipeline'], message: 'must not list an environment twice' });
    for (const [env, e] of Object.entries(cfg.environments)) {
      if (e.delivery?.type === 'gitops') {
        const at = ['environments', env, 'delivery'];
        if (!e.kubeContext) ctx.addIssue({ code: 'custom', path: at, message: 'type gitops needs kubeContext and namespace (the cluster Flux applies to, where the smoke checks run)' });
        if (!e.delivery.flux) ctx.addIssue({ code: 'custom', path: [...at, 'flux'], message: 'is required with type gitops: { namespace, gitRepository, kustomization } naming the Flux objects the release waits on' });
      }
      if (e.canary && !e.kubeContext) ctx.addIssue({ code: 'custom', path: ['environments', env, 'canary'], message: 'needs kubeContext and namespace (a canary runs in a cluster)' });
      if (Boolean(e.kubeContext) !== Boolean(e.namespace)) {
        ctx.addIssue({ code: 'custom', path: ['environments', env, e.kubeContext ? 'namespace' : 'kubeContext'], message: 'kubeContext and namespace go together (where this environment deploys)' });
      }
    }
    for (const [svc, s] of Object.entries(cfg.services)) {
      for (const env of Object.keys(s.chart?.environments ?? {})) {
        if (!cfg.environments[env]) ctx.addIssue({ code: 'custom', path: ['services', svc, 'chart', 'environments', env], message: `names unknown environment "${env}"` });
      }
      // Where the chart values say how many replicas the stable Deployment runs, a replica-ratio canary's weights
      // are checked now; otherwise the canary's start checks them against the running Deployment, before any patch.
      for (const [env, e] of Object.entries(cfg.environments)) {
        if (!s.chart || e.canary?.traffic.type !== 'replicas') continue;
        const replicas = { ...s.chart.values, ...(s.chart.environments[env] ?? {}) }.replicaCount;
        if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 1) continue;
        e.canary.steps.forEach((step, i) => {
          const problem = 'setWeight' in step ? replicaWeightProblem(step.setWeight, replicas) : undefined;
          if (problem) ctx.addIssue({ code: 'custom', path: ['environments', env, 'canary', 'steps', i, 'setWeight'], message: `${problem} (services.${svc}.chart values set replicaCount: ${replicas})` });
        });
      }
    }
  });

export type SlipwayConfig = z.infer<typeof slipwayConfigSchema>;
export type DeployConfig = z.infer<typeof deployConfigSchema>;
export type RegistryConfig = z.infer<typeof registryConfigSchema>;
export type ApprovalPolicyConfig = z.infer<typeof approvalPolicySchema>;

/** One line per problem, each naming the path of the bad field and the rule it broke. */
export function formatIssues(error: z.ZodError, root = ''): string {
  return error.issues
    .map((i) => {
      const path = [root, ...i.path.map(String)].filter(Boolean).join('.');
      // A bad record key (a service or build-arg name) carries the rule it broke in its nested issues.
      const nested = (i as { issues?: { message: string }[] }).issues;
      const message = i.code === 'invalid_key' && nested?.length ? nested.map((n) => n.message).join('; ') : i.message;
      return `${path || '(root)'}: ${message}`;
    })
    .join('\n');
}
