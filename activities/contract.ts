/** The activity interface the workflow proxies (imported there as a type only) and the workers implement. */
import type {
  BuildImageInput,
  BuildImageResult,
  CopyImageInput,
  CopyImageResult,
  DeployChartInput,
  DeployChartResult,
  DeployedState,
  DeployLockInput,
  DeployLockResult,
  InspectDeployInput,
  PackageChartInput,
  PackageChartResult,
  RollbackInput,
  RollbackResult,
  SmokeTestInput,
  SmokeTestResult,
  PushImageInput,
  CanaryMeasurement,
  MeasureCanaryInput,
  RemoveCanaryInput,
  SetCanaryWeightInput,
  StartCanaryInput,
  StartCanaryResult,
  PushImageResult,
  ScanImageInput,
  ResolveReleaseInput,
  ResolvedRelease,
} from '../model/types';
import type { ScanReport } from '../model/scan-policy';
import type {
  FluxApplied,
  FluxWaitRequest,
  PreparedChange,
  PullRequest,
  PullRequestStatus,
  ReleaseChange,
  RevertResult,
} from './gitops/ports';
import type { GitopsDelivery } from '../model/gitops';

/** Every gitops activity names the delivery section it works on (repository, format, forge, token by variable name). */
export interface GitopsApplyInput {
  delivery: GitopsDelivery;
  change: ReleaseChange;
  to: 'direct' | 'branch';
}
export interface GitopsOpenPullRequestInput {
  delivery: GitopsDelivery;
  head: string;
  title: string;
  body: string;
}
export interface GitopsPullRequestInput {
  delivery: GitopsDelivery;
  number: number;
  /** Merge only if the head is still this commit. */
  sha?: string;
}
export interface GitopsRevertInput {
  delivery: GitopsDelivery;
  workflowId: string;
  environment: string;
  to: 'direct' | 'branch';
}

export interface SlipwayActivities {
  /** The release plan and the trusted decision-token keys, from the workers' own configuration. */
  resolveRelease(input: ResolveReleaseInput): Promise<ResolvedRelease>;
  /** Builds on a Docker host; returns that host's task queue for the push. */
  buildImage(input: BuildImageInput): Promise<BuildImageResult>;
  /** Pushes a locally built tag; runs on the host that built it. */
  pushImage(input: PushImageInput): Promise<PushImageResult>;
  /** Scans an image for known vulnerabilities; judging the report is the workflow's job (scan-policy.ts). */
  scanImage(input: ScanImageInput): Promise<ScanReport>;
  /** Copies a manifest (and what it references) to another repository or registry without pulling it. */
  copyImage(input: CopyImageInput): Promise<CopyImageResult>;
  /** Packages the service's chart (version = release version) and pushes it as an OCI artifact; runs on builders. */
  packageChart(input: PackageChartInput): Promise<PackageChartResult>;
  /** The revision deployed in an environment before the release touches it. */
  inspectDeploy(input: InspectDeployInput): Promise<DeployedState>;
  /** `helm upgrade --install --wait` of the chart by digest with the image by digest; idempotent across retries. */
  deployChart(input: DeployChartInput): Promise<DeployChartResult>;
  /** Returns an environment to the revision captured before the release (or uninstalls when there was none). */
  rollbackDeploy(input: RollbackInput): Promise<RollbackResult>;
  smokeTest(input: SmokeTestInput): Promise<SmokeTestResult>;
  /** One release per service per environment: a Kubernetes Lease held by the release's workflow id. */
  acquireDeployLock(input: DeployLockInput): Promise<DeployLockResult>;
  releaseDeployLock(input: DeployLockInput): Promise<{ released: boolean }>;
  /** Runs the new image as `<name>-canary` beside the stable Deployment, with no traffic yet. */
  startCanary(input: StartCanaryInput): Promise<StartCanaryResult>;
  setCanaryWeight(input: SetCanaryWeightInput): Promise<{ weight: number; canaryReplicas: number }>;
  /** Both tracks' series for each query over [start, end] (Prometheus query_range). */
  measureCanary(input: MeasureCanaryInput): Promise<CanaryMeasurement>;
  /** All traffic to stable, canary Deployment and Service deleted; idempotent. */
  removeCanary(input: RemoveCanaryInput): Promise<{ removed: boolean }>;
}

/**
 * The GitOps delivery activities (issue #13), registered on the orchestrator beside SlipwayActivities; a separate
 * interface so that workers and test doubles without GitOps need not implement them.
 */
export interface GitopsActivities {
  /** GitOps: the release's change in the environment repository, pushed to the target branch or a release branch. */
  gitopsApplyChange(input: GitopsApplyInput): Promise<PreparedChange>;
  /** Opens the pull request from the release branch (or returns the one already open). */
  gitopsOpenPullRequest(input: GitopsOpenPullRequestInput): Promise<PullRequest>;
  /** The pull request's state and reviews as the forge says now (the workflow never trusts a webhook's payload). */
  gitopsPullRequestStatus(input: GitopsPullRequestInput): Promise<PullRequestStatus>;
  /** Merges the pull request (auto-merge); merged already → its state. */
  gitopsMergePullRequest(input: GitopsPullRequestInput): Promise<PullRequestStatus>;
  /** Reverts the release's change (directly or on a revert branch); `nothing` when it never landed. */
  gitopsRevertChange(input: GitopsRevertInput): Promise<RevertResult>;
  /** Asks Flux to reconcile and waits until the commit is applied (fails with Flux's reason). */
  waitFluxApplied(input: FluxWaitRequest): Promise<FluxApplied>;
}
