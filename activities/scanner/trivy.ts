/**
 * The Trivy adapter of the Scanner port: `trivy image --format json` (report schema 2), run with an argument array.
 * Every way it can go wrong is a named failure (scannerFailure): a broken scanner never counts as a clean scan.
 * Only a failed run (ScannerFailed: the registry, the disk) is retried; a missing binary or database, a timeout
 * and an unreadable report are final.
 */
import type { ApplicationFailure } from '@temporalio/activity';
import { existsSync } from 'node:fs';
import { cancellation, runTool, tail, toolBinary } from '../exec';
import { parseDuration } from '../../model/config';
import { ErrorTypes } from '../../model/errors';
import { portError } from '../errors';
import { countBySeverity, normaliseSeverity, type Finding, type ScanReport } from '../../model/scan-policy';
import type { RegistryRef } from '../../model/types';
import type { Progress, Scanner } from '../ports';
import type { CredentialStore } from '../registry/credentials';
import { parseQualifiedImageRef } from '../../model/identifiers';

/** The catalogue types the Trivy adapter raises (model/errors.ts declares whether each is retried). */
export type ScannerErrorType = (typeof ErrorTypes)['ScannerUnavailable' | 'ScannerDatabase' | 'ScannerTimeout' | 'ScanReportInvalid' | 'ScannerFailed'];

export class ScannerError extends Error {
  constructor(
    message: string,
    readonly type: ScannerErrorType,
  ) {
    super(message);
    this.name = type;
  }
}

/** A scanner failure in the shared vocabulary, with the catalogue's retryability for its type. */
export function scannerFailure(err: ScannerError): ApplicationFailure {
  return portError(err.type, err.message);
}

export interface TrivyOptions {
  binary: string;
  /** Trivy's cache (holds db/trivy.db). */
  cacheDir?: string;
  /** Pull the database from this OCI repository instead of using the cache as it is. */
  dbRepository?: string;
  timeoutMs: number;
  dockerHost?: string;
}

/** Parses and checks a Trivy JSON report (schema 2) into Slipway's compact form. */
export function parseTrivyReport(text: string, image: string, scannedAt: string): ScanReport {
  let doc: any;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ScannerError(`the Trivy report is not JSON: ${(err as Error).message}`, ErrorTypes.ScanReportInvalid);
  }
  if (doc?.SchemaVersion !== 2) throw new ScannerError(`unsupported Trivy report schema ${JSON.stringify(doc?.SchemaVersion)} (expected 2)`, ErrorTypes.ScanReportInvalid);
  if (doc.Results !== undefined && !Array.isArray(doc.Results)) throw new ScannerError('the Trivy report has a Results field that is not a list', ErrorTypes.ScanReportInvalid);
  const findings: Finding[] = [];
  for (const result of doc.Results ?? []) {
    for (const v of result?.Vulnerabilities ?? []) {
      if (typeof v?.VulnerabilityID !== 'string' || typeof v?.PkgName !== 'string') {
        throw new ScannerError('the Trivy report has a vulnerability without VulnerabilityID or PkgName', ErrorTypes.ScanReportInvalid);
      }
      findings.push({
        id: v.VulnerabilityID,
        pkg: v.PkgName,
        installed: String(v.InstalledVersion ?? ''),
        ...(v.FixedVersion ? { fixed: String(v.FixedVersion) } : {}),
        severity: normaliseSeverity(String(v.Severity ?? 'UNKNOWN')),
        target: result.Target,
        ...(v.Title ? { title: String(v.Title).slice(0, 200) } : {}),
      });
    }
  }
  const imageId = typeof doc.Metadata?.ImageID === 'string' ? doc.Metadata.ImageID : undefined;
  const repoDigest: unknown = doc.Metadata?.RepoDigests?.[0];
  const digest = typeof repoDigest === 'string' && /@sha256:[a-f0-9]{64}$/.test(repoDigest) ? repoDigest.slice(repoDigest.indexOf('@') + 1) : undefined;
  return { scanner: 'trivy', image, scannedAt, ...(imageId ? { imageId } : {}), ...(digest ? { digest } : {}), counts: countBySeverity(findings), findings };
}

export class TrivyScanner implements Scanner {
  constructor(
    private readonly opts: TrivyOptions,
    private readonly credentials: CredentialStore,
  ) {}

  async scan(req: { image: string; source: 'docker' | 'registry'; registry?: RegistryRef }, progress: Progress): Promise<ScanReport> {
    if (!existsSync(this.opts.binary)) {
      throw new ScannerError(`trivy not found at ${this.opts.binary}: install it (scripts/install.sh) or set SLIPWAY_TRIVY_BIN`, ErrorTypes.ScannerUnavailable);
    }
    const args = ['image', '--format', 'json', '--quiet', '--scanners', 'vuln', '--timeout', `${Math.ceil(this.opts.timeoutMs / 1000)}s`, '--image-src', req.source === 'docker' ? 'docker' : 'remote'];
    if (this.opts.cacheDir) args.push('--cache-dir', this.opts.cacheDir);
    if (this.opts.dbRepository) args.push('--db-repository', this.opts.dbRepository, '--skip-java-db-update');
    else args.push('--skip-db-update', '--skip-java-db-update');
    args.push(req.image);
    // Registry credentials and the Docker socket reach trivy through its environment, never its argv.
    const env: NodeJS.ProcessEnv = { ...process.env, ...(this.opts.dockerHost ? { DOCKER_HOST: this.opts.dockerHost } : {}) };
    if (req.source === 'registry') {
      const host = parseQualifiedImageRef(req.image).registry;
      const c = this.credentials.lookup(host, req.registry?.host === host ? req.registry.name : undefined);
      if (c) Object.assign(env, { TRIVY_USERNAME: c.username, TRIVY_PASSWORD: c.password });
      if (req.registry?.insecure) env.TRIVY_INSECURE = 'true';
    }
    progress({ scanning: req.image, source: req.source });
    const scannedAt = new Date().toISOString();
    // runTool heartbeats on a timer and ends trivy's whole process group on cancellation or timeout.
    const { stdout, stderr, code, signal, timedOut, cancelled } = await runTool(this.opts.binary, args, {
      env,
      timeoutMs: this.opts.timeoutMs + Math.min(30_000, Math.max(2_000, this.opts.timeoutMs / 2)),
      onTick: (p) => progress({ scanning: req.image, source: req.source, ...p }),
    });
    if (cancelled) throw cancellation(`trivy scan of ${req.image}`);
    const last = tail(stderr);
    if (timedOut || /context deadline exceeded|timeout/i.test(last)) {
      throw new ScannerError(`trivy timed out after ${this.opts.timeoutMs} ms scanning ${req.image}: ${last}`, ErrorTypes.ScannerTimeout);
    }
    if (code !== 0) {
      if (/skip-db-update|DB|database|db\.Init|metadata/i.test(last)) {
        throw new ScannerError(`trivy has no usable vulnerability database (${this.opts.cacheDir ?? 'default cache'}): ${last}`, ErrorTypes.ScannerDatabase);
      }
      throw new ScannerError(`trivy failed (${signal ? `killed by ${signal}` : `exit ${code}`}) scanning ${req.image}: ${last}`, ErrorTypes.ScannerFailed);
    }
    return parseTrivyReport(stdout, req.image, scannedAt);
  }
}

/** Worker-side settings: SLIPWAY_TRIVY_BIN, SLIPWAY_TRIVY_CACHE_DIR, SLIPWAY_TRIVY_DB_REPOSITORY, SLIPWAY_TRIVY_TIMEOUT. */
export function trivyOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): TrivyOptions {
  return {
    binary: toolBinary('trivy', env.SLIPWAY_TRIVY_BIN, env),
    cacheDir: env.SLIPWAY_TRIVY_CACHE_DIR,
    dbRepository: env.SLIPWAY_TRIVY_DB_REPOSITORY,
    timeoutMs: parseDuration(env.SLIPWAY_TRIVY_TIMEOUT ?? '10m') ?? 600_000,
    dockerHost: env.DOCKER_HOST,
  };
}
