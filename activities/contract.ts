/** The activity interface the workflow proxies (imported there as a type only) and the workers implement. */
import type {
  BuildImageInput,
  BuildImageResult,
  CopyImageInput,
  CopyImageResult,
  PushImageInput,
  PushImageResult,
  ScanImageInput,
} from '../workflows/types';
import type { ScanReport } from '../workflows/scan-policy';

export interface SlipwayActivities {
  /** Builds on a Docker host; returns that host's task queue for the push. */
  buildImage(input: BuildImageInput): Promise<BuildImageResult>;
  /** Pushes a locally built tag; runs on the host that built it. */
  pushImage(input: PushImageInput): Promise<PushImageResult>;
  /** Scans an image for known vulnerabilities; judging the report is the workflow's job (scan-policy.ts). */
  scanImage(input: ScanImageInput): Promise<ScanReport>;
  /** Copies a manifest (and what it references) to another repository or registry without pulling it. */
  copyImage(input: CopyImageInput): Promise<CopyImageResult>;
}
