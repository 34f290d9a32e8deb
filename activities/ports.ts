/**
 * Ports: one interface per external concern. Adapters (one per vendor) implement them and take their clients as
 * constructor arguments, so tests hand them real clients pointed at local servers.
 */
import type { ScanReport } from '../model/scan-policy';
import type { CopyImageInput, CopyImageResult, RegistryRef } from '../model/types';
import type { TrafficPlan } from '../model/identifiers';

export type Progress = (details: Record<string, unknown>) => void;

export interface BuildRequest {
  contextDir: string;
  dockerfile: string;
  tag: string;
  args: Record<string, string>;
  labels: Record<string, string>;
  signal?: AbortSignal;
}

export interface ImageBuilder {
  build(req: BuildRequest, progress: Progress): Promise<{ imageId: string; steps: number }>;
  push(tag: string, registry: RegistryRef, progress: Progress, signal?: AbortSignal): Promise<{ digest: string; size?: number }>;
}

/** Copies an image between repositories (and registries) by manifest, never by pulling it. */
export interface Registry {
  copy(input: CopyImageInput, progress: Progress): Promise<CopyImageResult>;
}

/** Finds known vulnerabilities in an image, local (on this Docker host) or in a registry. */
export interface Scanner {
  scan(req: { image: string; source: 'docker' | 'registry'; registry?: RegistryRef }, progress: Progress): Promise<ScanReport>;
}

/** Time series for canary analysis: one metric, one track (baseline or canary), over an interval. */
export interface MetricProvider {
  queryRange(req: { query: string; start: Date; end: Date; stepSeconds: number }): Promise<number[]>;
}

/** Where a deploy goes: a kube context (named in the worker's kubeconfig, never sent as content) and a namespace. */
export interface KubeTarget {
  context: string;
  namespace: string;
}

export interface HelmRevision {
  revision: number;
  status: string;
  updated: string;
  chart: string;
  appVersion: string;
  description: string;
}

/** Installs and upgrades charts and keeps their revision history (Helm). */
export interface Deployer {
  package(chartDir: string, version: string, outDir: string): Promise<string>;
  upgrade(
    req: KubeTarget & { release: string; chartFile: string; valuesFile: string; timeoutMs: number; description: string },
    progress: Progress,
    signal?: AbortSignal,
  ): Promise<{ revision: number }>;
  /** The manifests an upgrade with these values would apply (hooks included), without touching the cluster. */
  template(req: KubeTarget & { release: string; chartFile: string; valuesFile: string; isUpgrade: boolean }): Promise<string>;
  history(target: KubeTarget, release: string): Promise<HelmRevision[]>;
  values(target: KubeTarget, release: string, revision: number): Promise<Record<string, unknown>>;
  rollback(target: KubeTarget, release: string, revision: number, timeoutMs: number, progress: Progress): Promise<void>;
  uninstall(target: KubeTarget, release: string, timeoutMs: number, progress?: Progress): Promise<void>;
  test(target: KubeTarget, release: string, timeoutMs: number, progress: Progress): Promise<{ passed: string[] }>;
}

export interface RolloutState {
  exists: boolean;
  done: boolean;
  /** Set when the rollout cannot finish by itself (progress deadline exceeded). */
  failed?: string;
  replicas: number;
  updated: number;
  ready: number;
  available: number;
  /** Recent warning events of the workload and its pods, newest last: the reasons a rollout is stuck. */
  warnings: string[];
  image?: string;
}

export interface WorkloadRecord {
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  image?: string;
  ready: number;
  replicas: number;
}

/** The Kubernetes API: what Helm's exit code does not say (rollout state and its reasons), leases, inventory. */
export interface PodContainerImage {
  pod: string;
  container: string;
  init: boolean;
  /** The pod spec's image. */
  image: string;
  /** status.containerStatuses[].imageID: empty until the node reports it (and always on kwok's simulated nodes). */
  imageID: string;
}

/**
 * A Service as cluster DNS and kube-proxy see it: its ClusterIP and the port asked for, and the endpoints (pod
 * addresses and the resolved target port) that port sends to, from the Service's EndpointSlices.
 */
export interface ServiceEndpoints {
  /** False when there is no such Service. */
  exists: boolean;
  /** `ClusterIP`, `NodePort`, `LoadBalancer`, `ExternalName`. */
  type?: string;
  /** `None` for a headless Service. */
  clusterIP?: string;
  /** The Service port matching the one asked for; absent when the Service has no such port (then `ports` lists them). */
  port?: { name: string; port: number; targetPort: string };
  ports: string[];
  /** Ready endpoints of that port: what kube-proxy picks from. */
  ready: { ip: string; port: number; pod?: string }[];
  /** Endpoints that exist but are not ready (starting, failing their readiness probe, terminating). */
  notReady: number;
}

export interface Cluster {
  contexts(): string[];
  ping(target: KubeTarget): Promise<void>;
  rollout(target: KubeTarget, deployment: string): Promise<RolloutState>;
  workloads(target: KubeTarget, selector: string): Promise<WorkloadRecord[]>;
  /** The containers of a Deployment's live (not terminating) pods: the image asked for and the image ID the node reports. */
  podImages(target: KubeTarget, deployment: string): Promise<PodContainerImage[]>;
  /** Takes (or keeps) a lease; returns the current holder when someone else holds it. */
  acquireLease(target: KubeTarget, name: string, holder: string, note: string, canTakeOver?: (holder: string) => Promise<boolean>): Promise<{ acquired: boolean; holder?: string; note?: string; since?: string }>;
  releaseLease(target: KubeTarget, name: string, holder: string): Promise<boolean>;
  /** How a Service's port resolves (cluster DNS → ClusterIP → endpoints), read from the API, for callers outside the cluster. */
  serviceEndpoints(target: KubeTarget, service: string, port: number): Promise<ServiceEndpoints>;
}

/**
 * How a canary's share of traffic is set, one adapter per router (replica ratio, Gateway API, Istio), as Argo
 * Rollouts' traffic routers. A router is bound to one canary (its stable service and the `<name>-canary` copy).
 */
export interface TrafficRouter {
  readonly type: TrafficPlan['type'];
  /** Why `weight` % cannot be carried with `stableReplicas` stable pods (checked before any change); undefined when it can. */
  weightProblem(weight: number, stableReplicas: number): string | undefined;
  /**
   * Why this router cannot carry a canary in `target` at all (its route is missing, or has no rule with both a stable
   * and a canary backend) — asked before the canary starts, so nothing is created for a canary that cannot be routed.
   */
  routeProblem(target: KubeTarget): Promise<string | undefined>;
  /**
   * Scales the canary Deployment and sends it `weight` % of traffic; returns the weight actually in effect (a
   * replica ratio is approximate) and the canary's replicas. Throws when the route lacks a canary or stable backend.
   */
  setWeight(target: KubeTarget, weight: number, stableReplicas: number): Promise<{ weight: number; canaryReplicas: number }>;
  /** All traffic back to the stable service (weight 0), before the canary goes; idempotent, a route already gone is fine. */
  reset(target: KubeTarget): Promise<void>;
}
