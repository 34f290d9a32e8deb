/**
 * Ports: one interface per external concern. Adapters (one per vendor) implement them and take their clients as
 * constructor arguments, so tests hand them real clients pointed at local servers.
 */
import type { ScanReport } from '../workflows/scan-policy';
import type { CopyImageInput, CopyImageResult, RegistryRef } from '../workflows/types';

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
