/**
 * Types shared by the workflow, the workers and the clients. The release input is a resolved plan: everything
 * the workflow needs from slipway.yaml, frozen at start so the history records exactly which policy applied.
 * It never holds a secret — credentials stay in the workers' environment.
 */
import { z } from 'zod';
import type { JudgeConfig, JudgeResult } from './canary';
import { smokeCheckSchema, type SmokeCheck } from './smoke';
import type { AuthMethod, TrustAnchors } from './decision-token';
import {
  digestSchema,
  gitShaSchema,
  identitySchema,
  chartValuesSchema,
  imageRefSchema,
  imageValuesSchema,
  kubeContextSchema,
  nameSchema,
  registryHostSchema,
  repoPathSchema,
  repositorySchema,
  versionSchema,
} from './config';
import { SEVERITIES, type TrafficPlan } from './identifiers';
import { fluxRefsSchema, gitopsDeliverySchema } from './gitops';

export const registryRefSchema = z.strictObject({
  name: nameSchema,
  type: z.enum(['oci', 'acr']),
  host: registryHostSchema,
  insecure: z.boolean().default(false),
  acr: z
    .strictObject({ subscriptionId: z.string(), resourceGroup: z.string(), registryName: z.string() })
    .optional(),
});
export type RegistryRef = z.infer<typeof registryRefSchema>;

export const approvalPlanSchema = z.strictObject({
  users: z.array(identitySchema),
  groups: z.array(nameSchema),
  /** Membership of the groups above, from slipway.yaml at start. */
  groupMembers: z.record(z.string(), z.array(identitySchema)),
  minApprovals: z.number().int().min(1).max(10),
  requesterCannotApprove: z.boolean(),
  timeoutMs: z.number().int().positive(),
  onTimeout: z.enum(['reject', 'approve']),
});
export type ApprovalPlan = z.infer<typeof approvalPlanSchema>;

export const scanPlanSchema = z.strictObject({
  failOn: z.enum(SEVERITIES),
  onlyFixed: z.boolean(),
  allow: z.array(z.strictObject({ id: z.string(), reason: z.string(), expires: z.string() })),
  rescanAfterMs: z.number().int().positive().optional(),
});

export const kubeTargetSchema = z.strictObject({ context: kubeContextSchema, namespace: nameSchema });
export type KubeTargetPlan = z.infer<typeof kubeTargetSchema>;

// The plan's smoke checks live with their configuration (model/smoke.ts).
export { smokeCheckSchema, type SmokeCheck };

export const deployPlanSchema = z.strictObject({
  target: kubeTargetSchema,
  /** `helm upgrade --wait --timeout`. */
  timeoutMs: z.number().int().positive(),
  /** When another release of the service holds the environment: wait for it (up to busyTimeoutMs) or refuse. */
  whenBusy: z.enum(['wait', 'refuse']),
  busyTimeoutMs: z.number().int().positive(),
  smoke: z.array(smokeCheckSchema),
  /** Chart values for this environment (slipway.yaml's service values merged with the environment's); never the image. */
  values: chartValuesSchema,
  /** The chart's own image value paths (slipway.yaml chart.imageValues); absent: image.repository/tag/digest. */
  imageValues: imageValuesSchema.optional(),
});
export type ImageValues = z.infer<typeof imageValuesSchema>;
export type DeployPlan = z.infer<typeof deployPlanSchema>;

export type CanaryStepPlan = { setWeight: number } | { analysis: { durationMs: number; intervalMs: number } } | { pause: { durationMs?: number } };
export interface CanaryPlan {
  traffic: TrafficPlan;
  prometheus: { url: string; stepSeconds: number };
  queries: { name: string; query: string }[];
  judge: JudgeConfig;
  steps: CanaryStepPlan[];
  decisionTimeoutMs: number;
}
// The plan is built from a config that zod already checked (canaryConfigSchema); here only its shape is asserted.
const canaryPlanSchema = z.custom<CanaryPlan>((v) => typeof v === 'object' && v !== null && Array.isArray((v as CanaryPlan).steps) && Array.isArray((v as CanaryPlan).queries));

/**
 * A gitops environment's delivery as the workflow runs it: the delivery section (tokens only by their environment
 * variable's name), the Flux objects to wait on, the cluster and namespace, the smoke checks and the time budgets.
 */
export const gitopsPlanSchema = z.strictObject({
  delivery: gitopsDeliverySchema,
  flux: fluxRefsSchema,
  target: kubeTargetSchema,
  /** How long Flux may take to apply a commit (slipway.yaml deploy.timeout). */
  timeoutMs: z.number().int().positive(),
  smoke: z.array(smokeCheckSchema),
  /** How long the release waits for its pull request to be merged (the approval timeout when there is one). */
  mergeTimeoutMs: z.number().int().positive(),
});
export type GitopsPlan = z.infer<typeof gitopsPlanSchema>;

export const environmentPlanSchema = z.strictObject({
  name: nameSchema,
  registry: registryRefSchema,
  repository: repositorySchema,
  approval: approvalPlanSchema.optional(),
  scan: scanPlanSchema.optional(),
  /** Present when the environment is a Kubernetes cluster the release is deployed to with Helm. */
  deploy: deployPlanSchema.optional(),
  /** Present when deploys to this environment go through canary analysis. */
  canary: canaryPlanSchema.optional(),
  /** Present when the release reaches this environment through its GitOps repository (then `deploy` is absent). */
  gitops: gitopsPlanSchema.optional(),
});
export type EnvironmentPlan = z.infer<typeof environmentPlanSchema>;

export const releaseInputSchema = z
  .strictObject({
    service: nameSchema,
    version: versionSchema,
    gitSha: gitShaSchema.optional(),
    requester: identitySchema,
    source: z.string().max(512).optional(),
    /** Build from source; absent when the release starts from an existing image. */
    build: z
      .strictObject({
        context: repoPathSchema,
        dockerfile: repoPathSchema,
        args: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/), z.string().max(4096)),
      })
      .optional(),
    image: imageRefSchema.optional(),
    /** The service's Helm chart: packaged from the repository, pushed as an OCI artifact, deployed by digest. */
    chart: z.strictObject({ path: repoPathSchema, repository: repositorySchema }).optional(),
    /** Ordered: the first receives the build, each later one is reached by promotion (after its approval). */
    environments: z.array(environmentPlanSchema).min(2),
  })
  .refine((i) => Boolean(i.build) !== Boolean(i.image), { message: 'exactly one of build or image must be given', path: ['image'] })
  .refine((i) => Boolean(i.chart) || i.environments.every((e) => !e.deploy), { message: 'environments deploy with Helm, so the service needs a chart', path: ['chart'] });
export type ReleaseInput = z.infer<typeof releaseInputSchema>;

export type StageKind = 'plan' | 'build' | 'scan' | 'push' | 'import' | 'approval' | 'promote' | 'preflight' | 'chart' | 'deploy' | 'smoke' | 'rollback' | 'canary';
export type StageState = 'pending' | 'running' | 'waiting' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';

export interface StageStatus {
  /** Unique within a release: "build", "push", "approval:prod", "promote:prod". */
  id: string;
  kind: StageKind;
  environment?: string;
  state: StageState;
  startedAt?: string;
  endedAt?: string;
  result?: Record<string, unknown>;
  error?: string;
}

export interface ApprovalRecord {
  environment: string;
  approver: string;
  decision: 'approved' | 'rejected';
  comment?: string;
  at: string;
  /** How the identity was established: the token's issuer and method; absent on runs from before signed decisions. */
  identity?: DecisionIdentity;
}

/** Who decided, as a verified token says: the issuer that signed, how it authenticated, the token's id. */
export interface DecisionIdentity {
  issuer: string;
  method: AuthMethod;
  /** True for the local stack's self-asserted identities (the CLI's own key): nobody checked who typed the command. */
  selfAsserted: boolean;
  tokenId: string;
}

export type ReleasePhase = 'running' | 'awaiting-approval' | 'succeeded' | 'failed' | 'rejected' | 'expired' | 'aborted';
export const TERMINAL_PHASES: readonly ReleasePhase[] = ['succeeded', 'failed', 'rejected', 'expired', 'aborted'];

export interface ReleaseStatus {
  service: string;
  version: string;
  requester: string;
  /** How the requester was verified (absent on runs from before signed start requests). */
  requesterIdentity?: DecisionIdentity;
  /** Where the plan came from: the workers' configuration, and its digest (absent on older runs, whose input held it). */
  plan?: { source: string; digest: string; trustedIssuers: { name: string; selfAsserted: boolean }[] };
  gitSha?: string;
  phase: ReleasePhase;
  /** The manifest digest every later stage works on; set by push or import. */
  digest?: string;
  /** Where the release currently lives, by environment: the reference pushed or promoted there. */
  references: Record<string, string>;
  stages: StageStatus[];
  approvals: ApprovalRecord[];
  awaitingApproval?: { environment: string; required: number; received: number; deadline: string; approvers: string[] };
  /** The chart every deploy of this release installs, by digest. */
  chart?: { reference: string; digest: string };
  canary?: CanaryStatus;
  /** By environment: the Helm revision this release deployed and the one it replaced (what a rollback returns to). */
  deployments?: Record<string, DeploymentRecord>;
  /** By environment, for gitops delivery: the change, its pull request (URL, state, merge commit, merger) and Flux. */
  gitops?: Record<string, GitopsRecord>;
  abort?: { reason: string; by: string; at: string; identity?: DecisionIdentity };
  error?: string;
  startedAt: string;
  endedAt?: string;
}

export interface DeploymentRecord {
  context: string;
  namespace: string;
  release: string;
  previousRevision: number;
  revision?: number;
  image: string;
  state: 'deploying' | 'canary' | 'deployed' | 'rolled-back' | 'rollback-skipped' | 'rollback-failed';
}

export interface GitopsRecord {
  repository: string;
  branch: string;
  merge: 'direct' | 'pull-request' | 'auto-merge';
  state: 'changing' | 'awaiting-merge' | 'merged' | 'applying' | 'applied' | 'reverting' | 'reverted' | 'revert-pull-request' | 'revert-failed';
  /** The release's commit (on the target branch once landed; on the release branch while a pull request is open). */
  commit?: string;
  pullRequest?: { number: number; url: string; state: 'open' | 'merged' | 'closed'; mergeCommit?: string; mergedBy?: string; mergedAt?: string; approvedBy?: string[] };
  /** The revision Flux applied (its own form, e.g. main@sha1:<commit>). */
  appliedRevision?: string;
  /** The revert of the release's change: its commit, or its pull request when the merge policy needs one. */
  revert?: { commit?: string; pullRequest?: { number: number; url: string } };
}

export type ReleaseResult = ReleaseStatus;

/** What the approvals inbox shows of a release waiting at a gate; kept in the workflow's memo under `inbox`. */
// Type-only: the schema lives in inbox.ts and is applied by readers of the memo, not by the workflow.
export type { InboxEntry } from './inbox';

// ---- message payloads ----

/**
 * An approve/reject request. With signed decisions (every new release) only `token` and `comment` count: identity,
 * groups, environment and digest come from the verified token; the other fields, when given, must agree with it.
 */
export const approvalRequestSchema = z.strictObject({
  token: z.string().max(8192).optional(),
  approver: identitySchema.optional(),
  /** Groups the caller's authentication vouches for (e.g. the UI's proxy headers); slipway.yaml's groups count too. */
  groups: z.array(nameSchema).max(100).optional(),
  comment: z.string().max(2000, 'must be at most 2000 characters').optional(),
  /** When given, must equal the release's digest: the approver approves exactly what they looked at. */
  digest: digestSchema.optional(),
  environment: nameSchema.optional(),
});
export type ApprovalRequest = z.infer<typeof approvalRequestSchema>;

export interface ApprovalResponse {
  environment: string;
  decision: 'approved' | 'rejected';
  received: number;
  required: number;
  complete: boolean;
}

export interface AbortRequest {
  reason: string;
  by: string;
  /** Signed decision token (act "abort"); required on releases started with signed decisions. */
  token?: string;
}

/**
 * What a start request may say: which release, and who asks — nothing about where it goes or who approves. The plan
 * comes from the workers' configuration (resolveRelease); the requester is proven by a signed token (act "start").
 */
export interface StartRequest {
  service: string;
  version: string;
  gitSha?: string;
  image?: string;
  requester: string;
  requesterToken?: string;
}
export type ResolveReleaseInput = Omit<StartRequest, 'requesterToken'>;
export interface ResolvedRelease {
  plan: ReleaseInput;
  /** sha256 of the plan's canonical JSON: what the status shows and an auditor can recompute. */
  planDigest: string;
  trust: TrustAnchors;
  /** Where the workers read it (a file path). */
  source: string;
}

// ---- activity contracts (inputs/results are checked with these schemas on the worker side) ----

export const buildImageInputSchema = z.strictObject({
  service: nameSchema,
  version: versionSchema,
  gitSha: gitShaSchema.optional(),
  source: z.string().max(512).optional(),
  /** ISO time fixed by the workflow so a retried build produces the same labels (and the same image). */
  created: z.string(),
  context: repoPathSchema,
  dockerfile: repoPathSchema,
  args: z.record(z.string(), z.string()),
  tag: imageRefSchema,
});
export type BuildImageInput = z.infer<typeof buildImageInputSchema>;
export interface BuildImageResult {
  imageId: string;
  tag: string;
  /** The task queue bound to the Docker host that holds the image: push must run there. */
  hostQueue: string;
  host: string;
  steps: number;
  durationMs: number;
  /** The full commit built: the resolved gitSha (also the image's revision label), else the workspace's HEAD. */
  revision?: string;
  /** Set when no gitSha was given and the build read the workspace as it is: whether it had uncommitted changes. */
  dirty?: boolean;
}

export const pushImageInputSchema = z.strictObject({ tag: imageRefSchema, registry: registryRefSchema });
export type PushImageInput = z.infer<typeof pushImageInputSchema>;
export interface PushImageResult {
  reference: string;
  digest: string;
  size?: number;
}

export const copyImageInputSchema = z.strictObject({
  source: imageRefSchema,
  sourceRegistry: registryRefSchema.optional(),
  target: imageRefSchema,
  targetRegistry: registryRefSchema,
  /** When given, the copy fails unless the source manifest has exactly this digest. */
  expectDigest: digestSchema.optional(),
});
export type CopyImageInput = z.infer<typeof copyImageInputSchema>;
export const scanImageInputSchema = z.strictObject({
  image: imageRefSchema,
  /** docker: the image in the local engine (right after the build, same host); registry: pulled by the scanner. */
  source: z.enum(['docker', 'registry']),
  registry: registryRefSchema.optional(),
});
export type ScanImageInput = z.infer<typeof scanImageInputSchema>;

export interface CopyImageResult {
  source: string;
  target: string;
  digest: string;
  mediaType: string;
  manifests: number;
  blobsMounted: number;
  blobsCopied: number;
  blobsSkipped: number;
  bytesCopied: number;
  method: 'oci-copy' | 'acr-import';
}

// ---- deploy activities ----

export const packageChartInputSchema = z.strictObject({
  service: nameSchema,
  version: versionSchema,
  chartPath: repoPathSchema,
  registry: registryRefSchema,
  repository: repositorySchema,
});
export type PackageChartInput = z.infer<typeof packageChartInputSchema>;
export interface PackageChartResult {
  /** host/repository@sha256:… — what every deploy of this release installs. */
  reference: string;
  repository: string;
  digest: string;
  chart: string;
  version: string;
  size: number;
}

export const chartRefSchema = z.strictObject({ registry: registryRefSchema, repository: repositorySchema, digest: digestSchema });

export const inspectDeployInputSchema = z.strictObject({ service: nameSchema, target: kubeTargetSchema });
export type InspectDeployInput = z.infer<typeof inspectDeployInputSchema>;
/** What is deployed before a release touches an environment: the revision a rollback returns to (0: nothing). */
export interface DeployedState {
  revision: number;
  status?: string;
  appVersion?: string;
  /** The slipway release (workflow id) that deployed it, when slipway did. */
  release?: string;
}

/** Which release run acts on which service in which environment: what every Helm step records or checks. */
const releaseRunTargetSchema = z.strictObject({
  /** The release's workflow id and run: recorded in the Helm values, so a retried attempt recognises its own revision. */
  releaseId: z.string().min(1).max(255),
  runId: z.string().min(1).max(64),
  service: nameSchema,
  environment: nameSchema,
  target: kubeTargetSchema,
});

export const deployChartInputSchema = releaseRunTargetSchema.extend({
  version: versionSchema,
  chart: chartRefSchema,
  /** Deployed as repository@digest, never by tag. */
  image: z.strictObject({ repository: z.string().regex(/^[A-Za-z0-9.-]+(:[0-9]{1,5})?\/[a-z0-9._/-]+$/), digest: digestSchema }),
  values: chartValuesSchema,
  /** Where the chart reads the image (absent: image.repository, image.tag = <version>@<digest>, image.digest). */
  imageValues: imageValuesSchema.optional(),
  timeoutMs: z.number().int().positive(),
  owner: identitySchema,
  changeCause: z.string().max(256),
});
export type DeployChartInput = z.infer<typeof deployChartInputSchema>;
export interface DeployChartResult {
  release: string;
  revision: number;
  /** True when a previous attempt (a worker that died) had already started this upgrade: no second upgrade ran. */
  resumed: boolean;
  /**
   * A revision an earlier attempt left pending (its worker and Helm were killed) and that this attempt undid before
   * deploying again: an install is uninstalled, an upgrade rolled back to the last deployed revision `to`.
   */
  recovered?: { revision: number; status: string; action: 'uninstalled' | 'rolled-back'; to?: number };
  image: string;
  replicas: number;
  available: number;
  durationMs: number;
  /**
   * How the running pods were checked against the digest: by their status imageID (a real kubelet), or, where the
   * node reports none (kwok's simulated kubelet), by the image their spec asks for.
   */
  pinned?: { pods: number; containers: number; by: 'imageID' | 'spec' };
}

export const rollbackInputSchema = releaseRunTargetSchema.extend({
  /** The revision captured before the release deployed; 0 means there was none, so the release is uninstalled. */
  toRevision: z.number().int().min(0),
  reason: z.string().max(2000),
  timeoutMs: z.number().int().positive(),
});
export type RollbackInput = z.infer<typeof rollbackInputSchema>;
export interface RollbackResult {
  action: 'rolled-back' | 'uninstalled' | 'skipped' | 'nothing-to-do';
  toRevision: number;
  /** The revision the rollback created (Helm records a rollback as a new revision). */
  revision?: number;
  note: string;
}

export const smokeTestInputSchema = z.strictObject({ service: nameSchema, environment: nameSchema, target: kubeTargetSchema, check: smokeCheckSchema });
export type SmokeTestInput = z.infer<typeof smokeTestInputSchema>;
export interface SmokeTestResult {
  check: SmokeCheck['type'];
  detail: string;
  durationMs: number;
}

export const deployLockInputSchema = z.strictObject({
  service: nameSchema,
  environment: nameSchema,
  target: kubeTargetSchema,
  /** The release's workflow id. */
  holder: z.string().min(1).max(255),
  whenBusy: z.enum(['wait', 'refuse']),
  note: z.string().max(256),
});
export type DeployLockInput = z.infer<typeof deployLockInputSchema>;
export interface DeployLockResult {
  acquired: boolean;
  waitedMs: number;
  /** A holder whose release had ended without unlocking (killed, terminated). */
  tookOverFrom?: string;
  waitedFor?: string;
}

/** `slipway release rollback`: returns an environment to the revision a finished release replaced. */
export interface RollbackRequest {
  releaseId: string;
  runId: string;
  service: string;
  environment: string;
  target: KubeTargetPlan;
  toRevision: number;
  reason: string;
  by: string;
  timeoutMs: number;
}
export const rollbackWorkflowId = (releaseId: string, environment: string, at: string): string => `rollback:${releaseId}:${environment}:${at}`;

// ---- canary activities ----

export interface StartCanaryInput {
  releaseId: string;
  service: string;
  environment: string;
  target: KubeTargetPlan;
  image: string;
  /** The traffic router and the steps' weights, checked against the stable Deployment before the canary is created. */
  traffic?: CanaryPlan['traffic'];
  weights?: { step: number; weight: number }[];
  /** GitOps: no stable Deployment yet (Flux never applied one) answers `absent` instead of failing. */
  noStable?: 'fail' | 'absent';
}
export interface StartCanaryResult {
  /** Empty with `absent`: nothing to compare with, no canary was made. */
  canary: string;
  absent?: boolean;
  stableImage?: string;
  stableReplicas: number;
}
export interface SetCanaryWeightInput {
  service: string;
  target: KubeTargetPlan;
  traffic: CanaryPlan['traffic'];
  weight: number;
  stableReplicas: number;
}
/**
 * One range of a canary's metrics: Prometheus evaluates each query at start + k·stepSeconds up to end. Since the
 * incremental-measure patch an interval asks only for the points after the previous one's (the workflow keeps them).
 */
export interface MeasureCanaryInput {
  prometheusUrl: string;
  queries: { name: string; query: string }[];
  /**
   * The release's namespace and service in this environment, for `$namespace`, `$service` and `$backend` in the
   * queries. Absent in runs that scheduled their measurements before they were passed (their queries use only $track).
   */
  namespace?: string;
  service?: string;
  start: string;
  end: string;
  stepSeconds: number;
}
/** The points of the range asked for, per metric and track, in time order. */
export interface CanaryMeasurement {
  metrics: { name: string; baseline: number[]; canary: number[] }[];
}
export interface RemoveCanaryInput {
  service: string;
  target: KubeTargetPlan;
  traffic: CanaryPlan['traffic'];
}

/** One judged interval, as the status keeps it: a summary (the interval's new points are in its activity's result). */
export interface CanaryInterval {
  step: number;
  at: string;
  weight: number;
  score: number;
  result: JudgeResult['result'];
  metrics: { name: string; classification: string; deviation: number }[];
}
export interface CanaryStatus {
  environment: string;
  state: 'running' | 'paused' | 'awaiting-decision' | 'promoting' | 'promoted' | 'rolled-back';
  step: number;
  weight: number;
  intervals: CanaryInterval[];
  decision?: { action: string; by: string; reason?: string; at: string; identity?: DecisionIdentity };
  awaitingUntil?: string;
}
export interface CanaryActionRequest {
  action: 'promote' | 'skip' | 'rollback';
  by: string;
  reason?: string;
  /** Signed decision token (act "canary:<action>", bound to environment, digest and step). */
  token?: string;
  /** Set by the workflow when accepted: the canary this action belongs to. */
  environment?: string;
  step?: number;
}
