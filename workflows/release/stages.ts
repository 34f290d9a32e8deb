/**
 * The image's stages: build → scan → push (or scan → import of a given image), the chart, and, per later
 * environment, the scan and the promotion by digest. Each runs as a stage of the release's status.
 */
import { ApplicationFailure, isCancellation } from '@temporalio/workflow';
import { ErrorTypes } from '../../model/errors';
import { describeViolations, evaluate, type ScanReport } from '../../model/scan-policy';
import type { BuildImageResult, EnvironmentPlan, ReleaseInput } from '../../model/types';
import { buildActs, hostActs, hostScanActs, registryActs, registryScanActs } from '../proxies';
import { messageOf, type Release } from './status';

/** The image's reference in an environment's repository, by tag or (sha256:…) by digest. */
const refOf = (env: EnvironmentPlan, tagOrDigest: string): string =>
  `${env.registry.host}/${env.repository}${tagOrDigest.startsWith('sha256:') ? '@' : ':'}${tagOrDigest}`;

export class Stages {
  /** The newest scan report: a later environment reuses it while it is recent enough for that environment's policy. */
  private lastScan: ScanReport | undefined;

  constructor(
    private readonly input: ReleaseInput,
    private readonly release: Release,
  ) {}

  /** Where the release's image lands first: the first environment's repository, tagged with the version. */
  private get landing(): string {
    return refOf(this.input.environments[0], this.input.version);
  }

  /** Builds the image on a builder, tagged for the first environment. */
  build(): Promise<BuildImageResult> {
    const { input } = this;
    return this.release.run('build', () =>
      buildActs.buildImage({
        service: input.service,
        version: input.version,
        gitSha: input.gitSha,
        source: input.source,
        created: this.release.status.startedAt,
        context: input.build!.context,
        dockerfile: input.build!.dockerfile,
        args: input.build!.args,
        tag: this.landing,
      }),
    );
  }

  /** Scans the built image on the Docker host that built it, before anything is pushed. */
  scanBuilt(first: EnvironmentPlan, built: BuildImageResult): Promise<void> {
    return this.scanGate('scan', first, async () => {
      const report = await hostScanActs(built.hostQueue).scanImage({ image: built.tag, source: 'docker' });
      // The scan must be of the image just built, not of whatever the tag points at by now.
      if (report.imageId && report.imageId !== built.imageId) {
        throw ApplicationFailure.nonRetryable(`scanned image ${report.imageId} is not the built image ${built.imageId}`, ErrorTypes.DigestMismatch);
      }
      return { report, rescanned: false };
    });
  }

  /** Pushes the built image from its host; the release's digest is the pushed one. */
  async push(first: EnvironmentPlan, built: BuildImageResult): Promise<void> {
    const pushed = await this.release.run('push', () => hostActs(built.hostQueue).pushImage({ tag: built.tag, registry: first.registry }));
    this.release.setDigest(pushed.digest);
    this.release.status.references[first.name] = pushed.reference;
  }

  /** When the image lives in a registry slipway.yaml knows, name it, so the worker finds that registry's credentials. */
  private sourceRegistry() {
    const sourceHost = this.input.image!.slice(0, this.input.image!.indexOf('/'));
    return this.input.environments.find((e) => e.registry.host === sourceHost)?.registry;
  }

  /** Scans a given image where it is; returns the digest scanned (when the scanner reports one). */
  async scanSource(first: EnvironmentPlan): Promise<string | undefined> {
    const sourceRegistry = this.sourceRegistry();
    let scannedDigest: string | undefined;
    await this.scanGate('scan', first, async () => {
      const report = await registryScanActs.scanImage({ image: this.input.image!, source: 'registry', ...(sourceRegistry ? { registry: sourceRegistry } : {}) });
      scannedDigest = report.digest;
      return { report, rescanned: false };
    });
    return scannedDigest;
  }

  /** Copies a given image into the first environment's repository; the release's digest is the copied one. */
  async importImage(first: EnvironmentPlan, scannedDigest: string | undefined): Promise<void> {
    const sourceRegistry = this.sourceRegistry();
    // Import exactly what was scanned: if the tag moved in between, the copy fails with DigestMismatchError.
    const imported = await this.release.run('import', () =>
      registryActs.copyImage({
        source: this.input.image!,
        ...(sourceRegistry ? { sourceRegistry } : {}),
        target: this.landing,
        targetRegistry: first.registry,
        ...(scannedDigest ? { expectDigest: scannedDigest } : {}),
      }),
    );
    this.release.setDigest(imported.digest);
    this.release.status.references[first.name] = this.landing;
  }

  /** Packages the service's chart and pushes it to the first environment's registry. */
  async chart(first: EnvironmentPlan): Promise<void> {
    const { input } = this;
    const chart = await this.release.run('chart', () =>
      buildActs.packageChart({ service: input.service, version: input.version, chartPath: input.chart!.path, registry: first.registry, repository: input.chart!.repository }),
    );
    this.release.status.chart = { reference: chart.reference, digest: chart.digest };
  }

  /** A later environment's scan: the last report while it is recent enough, else a new scan of the registry copy. */
  rescan(from: EnvironmentPlan, env: EnvironmentPlan): Promise<void> {
    const digest = this.release.status.digest!;
    return this.scanGate(`scan:${env.name}`, env, async () => {
      // New CVEs are published after the build: a scan older than the policy allows is repeated on the registry copy.
      const lastScan = this.lastScan;
      const age = lastScan ? Date.now() - Date.parse(lastScan.scannedAt) : Infinity;
      if (lastScan && (env.scan!.rescanAfterMs === undefined || age <= env.scan!.rescanAfterMs)) return { report: lastScan, rescanned: false };
      const report = await registryScanActs.scanImage({ image: refOf(from, digest), source: 'registry', registry: from.registry });
      if (report.digest && report.digest !== digest) {
        throw ApplicationFailure.nonRetryable(`rescanned ${report.digest}, the release is ${digest}`, ErrorTypes.DigestMismatch);
      }
      return { report, rescanned: true };
    });
  }

  /** Copies the release's digest from the previous environment's repository to this one's, tagged with the version. */
  async promote(from: EnvironmentPlan, env: EnvironmentPlan): Promise<void> {
    const digest = this.release.status.digest!;
    await this.release.run(`promote:${env.name}`, () =>
      registryActs.copyImage({
        source: refOf(from, digest),
        sourceRegistry: from.registry,
        target: refOf(env, this.input.version),
        targetRegistry: env.registry,
        expectDigest: digest,
      }),
    );
    this.release.status.references[env.name] = refOf(env, this.input.version);
  }

  /** Runs a scan stage: obtains a report (fresh or reused), judges it by `env`'s policy, fails before any push. */
  private async scanGate(id: string, env: EnvironmentPlan, report: () => Promise<{ report: ScanReport; rescanned: boolean }>): Promise<void> {
    const release = this.release;
    release.begin(id);
    let outcome: { report: ScanReport; rescanned: boolean };
    try {
      outcome = await report();
    } catch (err) {
      release.end(id, isCancellation(err) ? 'cancelled' : 'failed', undefined, messageOf(err));
      throw err;
    }
    this.lastScan = outcome.report;
    const verdict = evaluate(outcome.report, env.scan!, Date.now());
    const c = verdict.counts;
    const result = {
      summary: `${c.CRITICAL} critical, ${c.HIGH} high, ${c.MEDIUM} medium, ${c.LOW} low — ${verdict.pass ? 'pass' : `fail (${verdict.violations.length} violations)`} at ${env.name}'s threshold ${verdict.failOn}`,
      verdict: verdict.pass ? 'pass' : 'fail',
      scanner: outcome.report.scanner,
      image: outcome.report.image,
      scannedAt: outcome.report.scannedAt,
      ...(outcome.report.imageId ? { imageId: outcome.report.imageId } : {}),
      ...(outcome.report.digest ? { digest: outcome.report.digest } : {}),
      rescanned: outcome.rescanned,
      counts: c,
      failOn: verdict.failOn,
      violations: verdict.violations,
      allowed: verdict.allowed.map((a) => ({ id: a.id, pkg: a.pkg, reason: a.reason, expires: a.expires })),
      expiredAllowances: verdict.expired,
      ignoredUnfixed: verdict.ignoredUnfixed,
    };
    if (!verdict.pass) {
      const message = `scan policy for ${env.name} violated by ${verdict.violations.length} finding(s):\n${describeViolations(verdict)}`;
      release.end(id, 'failed', result, message);
      throw ApplicationFailure.create({ message, type: ErrorTypes.ScanPolicyViolation, nonRetryable: true, details: [result] });
    }
    release.end(id, 'succeeded', result);
  }
}
