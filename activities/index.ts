/**
 * Activity implementations. Each checks its input with the shared zod schema, heartbeats its progress, and
 * turns adapter errors into Temporal failures through the adapter's own map into the one vocabulary
 * (model/errors.ts decides what is retried).
 */
import { check, heartbeat, resolveInside, signal } from './common';
import { statSync } from 'node:fs';
import { ErrorTypes } from '../model/errors';
import { hostQueue } from '../model/queues';
import {
  buildImageInputSchema,
  copyImageInputSchema,
  pushImageInputSchema,
  scanImageInputSchema,
  type BuildImageResult,
  type RegistryRef,
} from '../model/types';
import type { SlipwayActivities } from './contract';
import { BuildError, buildFailure, pushFailure } from './docker/builder';
import { portError } from './errors';
import { prepareBuildSource } from './docker/source';
import type { ImageBuilder, Registry, Scanner } from './ports';
import { ScannerError, scannerFailure } from './scanner/trivy';

export type { SlipwayActivities } from './contract';
export { resolveInside } from './common';
export { createChartActivities, createDeployActivities, releaseIsRunning } from './deploy';
export { createGitopsActivities } from './gitops/activities';
export { FluxController } from './flux/flux';

export interface BuilderDeps {
  builder: ImageBuilder;
  /** Stable identity of this Docker host; names its task queue. */
  hostId: string;
  /** Root that build contexts are relative to (the repository checkout). */
  workspace: string;
}

export function createBuilderActivities(deps: BuilderDeps): Pick<SlipwayActivities, 'buildImage' | 'pushImage'> {
  return {
    async buildImage(raw): Promise<BuildImageResult> {
      const input = check(buildImageInputSchema, raw, 'buildImage');
      // With a gitSha the build reads exactly that commit, exported into a directory of its own (removed after).
      const source = await prepareBuildSource(deps.workspace, input.gitSha, [input.context]);
      try {
        const contextDir = resolveInside(source.root, input.context, 'build context');
        if (!statSync(contextDir).isDirectory()) throw portError(ErrorTypes.InvalidInput, `build context "${input.context}" is not a directory`);
        resolveInside(contextDir, input.dockerfile, 'Dockerfile');
        const started = Date.now();
        const revision = source.exact ? source.revision : undefined;
        const labels: Record<string, string> = {
          'org.opencontainers.image.version': input.version,
          'org.opencontainers.image.created': input.created,
          'org.opencontainers.image.title': input.service,
          ...(revision ? { 'org.opencontainers.image.revision': revision } : {}),
          ...(input.source ? { 'org.opencontainers.image.source': input.source } : {}),
        };
        const built = await deps.builder.build(
          // The release's identity is offered as build args too; a Dockerfile uses them only if it declares them.
          { contextDir, dockerfile: input.dockerfile, tag: input.tag, args: { SLIPWAY_VERSION: input.version, ...(revision ? { SLIPWAY_GIT_SHA: revision } : {}), ...input.args }, labels, signal: signal() },
          heartbeat,
        );
        return {
          imageId: built.imageId,
          steps: built.steps,
          tag: input.tag,
          host: deps.hostId,
          hostQueue: hostQueue(deps.hostId),
          durationMs: Date.now() - started,
          ...(source.revision ? { revision: source.revision } : {}),
          ...(source.dirty !== undefined ? { dirty: source.dirty } : {}),
        };
      } catch (err) {
        if (err instanceof BuildError) throw buildFailure(err);
        throw err;
      } finally {
        await source.cleanup();
      }
    },

    async pushImage(raw) {
      const input = check(pushImageInputSchema, raw, 'pushImage');
      let pushed: Awaited<ReturnType<ImageBuilder['push']>>;
      try {
        pushed = await deps.builder.push(input.tag, input.registry, heartbeat, signal());
      } catch (err) {
        throw pushFailure(err, input.tag);
      }
      const repo = input.tag.slice(0, input.tag.lastIndexOf(':'));
      return { reference: `${repo}@${pushed.digest}`, digest: pushed.digest, size: pushed.size };
    },
  };
}

export interface OrchestratorDeps {
  /** One Registry adapter per registry type ("oci", "acr"), chosen by the target's type. */
  registries: (ref: RegistryRef) => Registry;
}

export function createRegistryActivities(deps: OrchestratorDeps): Pick<SlipwayActivities, 'copyImage'> {
  return {
    async copyImage(raw) {
      const input = check(copyImageInputSchema, raw, 'copyImage');
      return deps.registries(input.targetRegistry).copy(input, heartbeat);
    },
  };
}

/** Scanning; registered on builders (local images) and on the orchestrator (images in registries). */
export function createScanActivities(deps: { scanner: Scanner }): Pick<SlipwayActivities, 'scanImage'> {
  return {
    async scanImage(raw) {
      const input = check(scanImageInputSchema, raw, 'scanImage');
      try {
        return await deps.scanner.scan(input, heartbeat);
      } catch (err) {
        // A failed scan run may be a passing fault (the registry, the disk); everything else is final.
        if (err instanceof ScannerError) throw scannerFailure(err);
        throw err;
      }
    },
  };
}
