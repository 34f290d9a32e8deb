/**
 * The Helm adapter of the Deployer port: the `helm` CLI through execFile with argument arrays. The kubeconfig comes
 * from the worker's environment (KUBECONFIG); only the context name travels in requests.
 */
import { CancelledFailure, type ApplicationFailure } from '@temporalio/activity';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorTypes } from '../../model/errors';
import { portError } from '../errors';
import { runTool, tail, toolBinary, type ToolRun } from '../exec';
import type { Deployer, HelmRevision, KubeTarget, Progress } from '../ports';

export type HelmErrorKind = 'timeout' | 'busy' | 'not-found' | 'unreachable' | 'invalid' | 'cancelled' | 'failed';

export class HelmError extends Error {
  constructor(
    message: string,
    readonly kind: HelmErrorKind,
  ) {
    super(message);
    this.name = 'HelmError';
  }
}

/** Turns Helm's stderr into a kind a caller can act on: a timeout fails the rollout, "busy" may be waited out. */
export function classifyHelmError(stderr: string, run: Pick<ToolRun, 'timedOut' | 'cancelled'>): HelmErrorKind {
  if (run.cancelled) return 'cancelled';
  if (run.timedOut || /context deadline exceeded|timed out waiting for the condition|timed out/i.test(stderr)) return 'timeout';
  if (/another operation \(install\/upgrade\/rollback\) is in progress/i.test(stderr)) return 'busy';
  if (/release: not found|has no deployed releases/i.test(stderr)) return 'not-found';
  if (/connection refused|no such host|Kubernetes cluster unreachable|context ".*" does not exist|i\/o timeout/i.test(stderr)) return 'unreachable';
  if (/parse error|YAML|chart requires|validation|invalid|unable to build kubernetes objects/i.test(stderr)) return 'invalid';
  return 'failed';
}

/**
 * Helm's failures in the shared vocabulary: a chart or values Helm refuses is final (DeployFailed), so is a kube
 * context the kubeconfig lacks (ClusterConfig); a cancelled run is the activity's cancellation; anything else
 * (an unreachable cluster, a busy release, an unclassified failure) is a HelmError that a retry may get past.
 * Deploy steps that know more (a failed rollout, a failed smoke test) check the kind before calling this.
 */
export function helmFailure(err: HelmError): ApplicationFailure | CancelledFailure {
  if (err.kind === 'cancelled') return new CancelledFailure(err.message);
  if (err.kind === 'invalid') return portError(ErrorTypes.DeployFailed, err.message);
  if (err.kind === 'unreachable' && /context .* does not exist/i.test(err.message)) return portError(ErrorTypes.ClusterConfig, err.message);
  return portError(ErrorTypes.Helm, err.message);
}

export interface HelmOptions {
  binary: string;
  env?: NodeJS.ProcessEnv;
  /** How often a running Helm command reports progress (heartbeats); tests shorten it. */
  tickMs?: number;
}

export function helmOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): HelmOptions {
  return { binary: toolBinary('helm', env.SLIPWAY_HELM_BIN, env), env };
}

export class HelmDeployer implements Deployer {
  private readonly env: NodeJS.ProcessEnv;

  constructor(private readonly opts: HelmOptions) {
    // Helm's own caches and repository config stay private to slipway: no user repositories, no shared state.
    const home = join(tmpdir(), `slipway-helm-${process.getuid?.() ?? 'user'}`);
    for (const d of ['cache', 'config', 'data']) mkdirSync(join(home, d), { recursive: true });
    this.env = { ...(opts.env ?? process.env), HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') };
  }

  private async helm(args: string[], timeoutMs: number, what: string, extra: { progress?: Progress; signal?: AbortSignal } = {}): Promise<string> {
    const started = Date.now();
    const run = await runTool(this.opts.binary, args, {
      env: this.env,
      timeoutMs,
      signal: extra.signal,
      // SIGTERM lets Helm mark the release failed instead of leaving it pending, so a rollback can follow.
      cancelSignal: 'SIGTERM',
      // A timer, not Helm's output: `--wait` prints nothing while it waits, and the heartbeat must not stop then.
      // runTool's own progress (tool, elapsed, last line) is kept; Helm adds what it waits for.
      onTick: (p) => extra.progress?.({ ...p, waiting: what, elapsedMs: Date.now() - started }),
      ...(this.opts.tickMs ? { tickMs: this.opts.tickMs } : {}),
    });
    if (run.code === 0 && !run.timedOut && !run.cancelled) return run.stdout;
    const message = tail(run.stderr).replace(/^Error: /m, '') || (run.signal ? `killed by ${run.signal}` : `exit ${run.code}`);
    throw new HelmError(`${what}: ${message}`, classifyHelmError(run.stderr, run));
  }

  private static target(t: KubeTarget): string[] {
    return ['--kube-context', t.context, '--namespace', t.namespace];
  }

  async package(chartDir: string, version: string, outDir: string): Promise<string> {
    const out = await this.helm(['package', chartDir, '--version', version, '--app-version', version, '--destination', outDir], 60_000, `helm package ${chartDir}`);
    const m = /saved it to: (.+\.tgz)/.exec(out);
    if (!m) throw new HelmError(`helm package ${chartDir}: unexpected output ${out.trim()}`, 'failed');
    return m[1].trim();
  }

  async upgrade(
    req: KubeTarget & { release: string; chartFile: string; valuesFile: string; timeoutMs: number; description: string },
    progress: Progress,
    signal?: AbortSignal,
  ): Promise<{ revision: number }> {
    const args = [
      'upgrade', req.release, req.chartFile, '--install', ...HelmDeployer.target(req), '--create-namespace',
      '--values', req.valuesFile, '--wait', '--timeout', `${Math.ceil(req.timeoutMs / 1000)}s`,
      '--history-max', '20', '--description', req.description, '--output', 'json',
    ];
    const out = await this.helm(args, req.timeoutMs + 30_000, `helm upgrade ${req.release} in ${req.context}/${req.namespace}`, { progress, signal });
    const revision = Number(JSON.parse(out)?.version);
    if (!Number.isInteger(revision)) throw new HelmError(`helm upgrade ${req.release}: no revision in its output`, 'failed');
    return { revision };
  }

  async template(req: KubeTarget & { release: string; chartFile: string; valuesFile: string; isUpgrade: boolean }): Promise<string> {
    // The upgrade's own release name, namespace and values file, so the render is what the upgrade will apply.
    const args = ['template', req.release, req.chartFile, '--namespace', req.namespace, '--values', req.valuesFile, ...(req.isUpgrade ? ['--is-upgrade'] : [])];
    try {
      return await this.helm(args, 60_000, `helm template ${req.release}`);
    } catch (err) {
      // Rendering touches no cluster: whatever fails here (a nil value, a `required`, a bad template) is the chart's
      // or the values' fault, and a retry would render the same thing.
      if (err instanceof HelmError && err.kind === 'failed') throw new HelmError(err.message, 'invalid');
      throw err;
    }
  }

  async history(target: KubeTarget, release: string): Promise<HelmRevision[]> {
    try {
      const out = await this.helm(['history', release, ...HelmDeployer.target(target), '--max', '256', '--output', 'json'], 60_000, `helm history ${release}`);
      return (JSON.parse(out) as any[]).map((h) => ({
        revision: Number(h.revision),
        status: String(h.status),
        updated: String(h.updated),
        chart: String(h.chart),
        appVersion: String(h.app_version ?? ''),
        description: String(h.description ?? ''),
      }));
    } catch (err) {
      if (err instanceof HelmError && err.kind === 'not-found') return [];
      throw err;
    }
  }

  async values(target: KubeTarget, release: string, revision: number): Promise<Record<string, unknown>> {
    const out = await this.helm(['get', 'values', release, ...HelmDeployer.target(target), '--revision', String(revision), '--output', 'json'], 60_000, `helm get values ${release}`);
    return (JSON.parse(out) ?? {}) as Record<string, unknown>;
  }

  async rollback(target: KubeTarget, release: string, revision: number, timeoutMs: number, progress: Progress): Promise<void> {
    await this.helm(
      ['rollback', release, String(revision), ...HelmDeployer.target(target), '--wait', '--timeout', `${Math.ceil(timeoutMs / 1000)}s`, '--history-max', '20'],
      timeoutMs + 30_000,
      `helm rollback ${release} to revision ${revision} in ${target.context}/${target.namespace}`,
      { progress },
    );
  }

  async uninstall(target: KubeTarget, release: string, timeoutMs: number, progress?: Progress): Promise<void> {
    await this.helm(
      ['uninstall', release, ...HelmDeployer.target(target), '--wait', '--timeout', `${Math.ceil(timeoutMs / 1000)}s`],
      timeoutMs + 30_000,
      `helm uninstall ${release} in ${target.context}/${target.namespace}`,
      { progress },
    );
  }

  async test(target: KubeTarget, release: string, timeoutMs: number, progress: Progress): Promise<{ passed: string[] }> {
    const out = await this.helm(['test', release, ...HelmDeployer.target(target), '--timeout', `${Math.ceil(timeoutMs / 1000)}s`], timeoutMs + 30_000, `helm test ${release}`, { progress });
    // "TEST SUITE:     delivery-smoke\n...Phase:          Succeeded"
    const passed = [...out.matchAll(/TEST SUITE:\s+(\S+)[\s\S]*?Phase:\s+Succeeded/g)].map((m) => m[1]);
    return { passed };
  }
}
