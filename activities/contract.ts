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
