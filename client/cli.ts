#!/usr/bin/env node
/**
 * The `slipway` CLI. Each command maps argv to a typed function that returns data; `--json` prints that data as one
 * JSON document on stdout, everything else (progress, logs) goes to stderr.
 *
 * Exit codes: 0 success / target reached · 1 release failed or an error · 2 usage or validation error ·
 * 3 rejected, expired, aborted, or an approval refused · 4 still running (a wait timed out).
 */
import { Command, CommanderError } from 'commander';
import { userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseDuration } from '../model/config';
import { releaseWorkflowId, isReleaseId, RELEASE_ID_RULE } from '../model/identifiers';
import type { ReleaseStatus } from '../model/types';
import { ApprovalRefusedError, SlipwayClient } from './client';
import { checkChart, keyDirOf, loadConfig } from '../host/config';
import { planRelease, tokenTtlSecondsOf } from '../model/plan';
import { UsageError } from '../model/errors';
import { localTokens, type DecisionTokens } from './identity/tokens';
import { ExchangeTokens } from './identity/exchange';
import { renderCanaryInterval, renderStatus } from './render';
import { temporalSettings } from '../workers/connection';

export const EXIT = { ok: 0, failed: 1, usage: 2, rejected: 3, running: 4 } as const;

interface Globals {
  json?: boolean;
  config: string;
  address?: string;
  namespace?: string;
}

class Exit extends Error {
  constructor(readonly code: number, readonly payload?: unknown, message = '') {
    super(message);
  }
}

const log = (msg: string) => process.stderr.write(`${msg}\n`);

export function exitCodeFor(status: ReleaseStatus, reached = true): number {
  switch (status.phase) {
    case 'succeeded':
      return EXIT.ok;
    case 'failed':
      return EXIT.failed;
    case 'rejected':
    case 'expired':
    case 'aborted':
      return EXIT.rejected;
    default:
      return reached ? EXIT.ok : EXIT.running;
  }
}

function durationOpt(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (!ms) throw new UsageError(`${name}: must be a duration such as 90s, 30m or 2h`);
  return ms;
}

function releaseId(id: string | undefined, o: { service?: string; version?: string }): string {
  if (id) {
    if (!isReleaseId(id)) throw new UsageError(`release id: ${RELEASE_ID_RULE}, got "${id}"`);
    return id;
  }
  if (o.service && o.version) return releaseWorkflowId(o.service, o.version);
  throw new UsageError('name the release: release:<service>:<version>, or --service and --version');
}

/**
 * How this CLI proves who it acts for. On the local stack (slipway.yaml `identity.local: true`) it signs with the
 * machine's local key: self-asserted, and the status says so. Elsewhere decisions come from an edge that
 * authenticated the person: with SLIPWAY_EDGE_URL the CLI exchanges the CI job's OIDC token there; without either
 * it has no key and the workflow refuses its unsigned decisions.
 */
function tokensFor(configFile: string): DecisionTokens | undefined {
  // CI: the pipeline's OIDC identity, exchanged at the approvals UI for a decision token.
  if (process.env.SLIPWAY_EDGE_URL) return new ExchangeTokens(process.env.SLIPWAY_EDGE_URL);
  let cfg: ReturnType<typeof loadConfig>;
  try {
    cfg = loadConfig(configFile);
  } catch (err) {
    log(`no signing key: ${(err as Error).message.split('\n')[0]}`);
    return undefined;
  }
  return cfg.identity?.local ? localTokens(keyDirOf(cfg), tokenTtlSecondsOf(cfg)) : undefined;
}

const defaultIdentity = () => process.env.SLIPWAY_USER ?? process.env.GITHUB_ACTOR ?? process.env.BUILD_REQUESTEDFOREMAIL ?? userInfo().username;

export function buildProgram(out: (doc: unknown, human: string) => void): Command {
  const program = new Command('slipway')
    .description('Durable, auditable releases on Temporal')
    .option('--json', 'print one JSON document on stdout')
    .option('--config <file>', 'slipway.yaml', process.env.SLIPWAY_CONFIG ?? 'slipway.yaml')
    .option('--address <host:port>', 'Temporal frontend (default $TEMPORAL_ADDRESS or 127.0.0.1:7233)')
    .option('--namespace <ns>', 'Temporal namespace (default $TEMPORAL_NAMESPACE or default)')
    .exitOverride()
    .showHelpAfterError();

  const globals = (): Globals => program.opts() as Globals;
  const connect = async () => {
    const s = temporalSettings();
    return SlipwayClient.connect(globals().address ?? s.address, globals().namespace ?? s.namespace, tokensFor(globals().config));
  };

  const release = program.command('release').description('start, follow and decide releases');

  release
    .command('start')
    .description('start a release (or attach to the running one with the same service and version)')
    .requiredOption('--service <name>')
    .requiredOption('--version <semver>')
    .option('--git-sha <sha>')
    .option('--image <ref>', 'release an already-built image instead of building')
    .option('--requester <identity>', 'who asks for this release', defaultIdentity())
    .option('--wait-for <target>', 'wait until a stage, stage kind, environment or "done" is reached')
    .option('--timeout <duration>', 'how long --wait-for waits', '60m')
    .action(async (o) => {
      const cfg = loadConfig(globals().config);
      const input = planRelease(cfg, { service: o.service, version: o.version, gitSha: o.gitSha, image: o.image, requester: o.requester });
      // The repository is where slipway.yaml lives: a chart that is not there is refused before anything starts.
      if (input.chart) checkChart(cfg, input.service, dirname(resolve(globals().config)));
      const timeoutMs = durationOpt(o.timeout, '--timeout');
      const client = await connect();
      // Only which release and who asks travel: the workers plan it from their own slipway.yaml (checked here too, for an early error).
      const started = await client.start({ service: input.service, version: input.version, requester: input.requester, ...(o.gitSha ? { gitSha: o.gitSha } : {}), ...(o.image ? { image: o.image } : {}) });
      log(`${started.attached ? 'attached to' : 'started'} ${started.workflowId} (run ${started.runId})`);
      if (!o.waitFor) return out(started, `${started.workflowId}`);
      const { status, reached } = await client.waitFor(started.workflowId, o.waitFor, { timeoutMs, onStatus: progressPrinter() });
      const code = exitCodeFor(status, reached);
      throw new Exit(code, { ...started, reached, status }, renderStatus(status));
    });

  release
    .command('status [id]')
    .description('the typed status of a release')
    .option('--service <name>')
    .option('--version <semver>')
    .action(async (id, o) => {
      const status = await (await connect()).status(releaseId(id, o));
      out(status, renderStatus(status));
    });

  release
    .command('wait [id]')
    .description('wait for a release to reach a target (default: done)')
    .option('--service <name>')
    .option('--version <semver>')
    .option('--for <target>', 'stage, stage kind, environment or "done"', 'done')
    .option('--timeout <duration>', 'give up (exit 4) after this long')
    .action(async (id, o) => {
      const { status, reached } = await (await connect()).waitFor(releaseId(id, o), o.for, { timeoutMs: durationOpt(o.timeout, '--timeout'), onStatus: progressPrinter() });
      throw new Exit(exitCodeFor(status, reached), { reached, status }, renderStatus(status));
    });

  for (const decision of ['approve', 'reject'] as const) {
    release
      .command(`${decision} [id]`)
      .description(`${decision} a release awaiting approval`)
      .option('--service <name>')
      .option('--version <semver>')
      .option('--as <identity>', 'who decides', defaultIdentity())
      .option('--comment <text>')
      .option('--digest <sha256:...>', 'refuse unless the release is exactly this digest')
      .option('--env <environment>', 'the environment whose gate this decides')
      .action(async (id, o) => {
        const response = await (await connect()).decide(releaseId(id, o), decision, { approver: o.as, comment: o.comment, digest: o.digest, environment: o.env });
        out(response, `${response.decision} for ${response.environment}: ${response.received}/${response.required} approvals${response.complete ? ' — gate complete' : ''}`);
      });
  }

  release
    .command('abort [id]')
    .description('abort a release at whatever stage it is in')
    .option('--service <name>')
    .option('--version <semver>')
    .requiredOption('--reason <text>')
    .option('--as <identity>', 'who aborts', defaultIdentity())
    .action(async (id, o) => {
      const wid = releaseId(id, o);
      await (await connect()).abort(wid, o.reason, o.as);
      out({ workflowId: wid, aborted: true }, `abort sent to ${wid}`);
    });

  release
    .command('rollback [id]')
    .description('roll an environment back to the revision a finished release replaced (Helm rollback)')
    .option('--service <name>')
    .option('--version <semver>')
    .requiredOption('--env <environment>', 'the environment to roll back')
    .option('--reason <text>', 'why', 'manual rollback')
    .option('--as <identity>', 'who rolls back', defaultIdentity())
    .option('--timeout <duration>', 'helm rollback --wait timeout', '5m')
    .action(async (id, o) => {
      const r = await (await connect()).rollback(releaseId(id, o), o.env, { reason: o.reason, by: o.as, timeoutMs: durationOpt(o.timeout, '--timeout') });
      out(r, `${r.action}: ${r.note} (${r.workflowId})`);
      if (r.action === 'skipped') throw new Exit(EXIT.rejected, undefined, '');
    });

  release
    .command('canary [id]')
    .description('steer a running canary: promote now, skip the current step, or roll back')
    .option('--service <name>')
    .option('--version <semver>')
    .requiredOption('--action <action>', 'promote | skip | rollback')
    .option('--reason <text>')
    .option('--as <identity>', 'who acts', defaultIdentity())
    .action(async (id, o) => {
      if (!['promote', 'skip', 'rollback'].includes(o.action)) throw new UsageError('--action: must be promote, skip or rollback');
      const c = await (await connect()).canary(releaseId(id, o), { action: o.action, by: o.as, ...(o.reason ? { reason: o.reason } : {}) });
      out(c, `${o.action} sent: canary in ${c.environment} at step ${c.step}, weight ${c.weight} %, ${c.intervals.length} intervals judged`);
    });

  release
    .command('list')
    .description('list releases (from Temporal visibility)')
    .option('--awaiting-approval', 'only those waiting for a decision')
    .option('--service <name>')
    .option('--env <environment>', 'only those awaiting approval for this environment')
    .option('--limit <n>', 'at most this many', '100')
    .action(async (o) => {
      const rows = await (await connect()).list({ awaitingApproval: o.awaitingApproval, service: o.service, environment: o.env, limit: Number(o.limit) });
      out(rows, rows.map((r) => `${r.workflowId.padEnd(40)} ${r.status.padEnd(10)} ${(r.stage ?? '').padEnd(16)} ${r.awaitingApproval ? `awaiting ${r.awaitingApproval}` : ''}`).join('\n') || '(none)');
    });

  program
    .command('inventory')
    .description('what is deployed in each environment: service, version, digest and owner, read from the clusters')
    .action(async () => {
      const { readInventory, renderInventory } = await import('./inventory');
      const { KubeCluster } = await import('../activities/kubernetes/cluster');
      const { localKubeconfig } = await import('./stack/kubernetes');
      const local = localKubeconfig();
      if (!process.env.KUBECONFIG && local) process.env.KUBECONFIG = local;
      const inv = await readInventory(loadConfig(globals().config), new KubeCluster());
      out(inv, renderInventory(inv));
      if (inv.problems.length) throw new Exit(EXIT.failed, undefined, '');
    });

  program
    .command('worker')
    .description('run workers: the orchestrator (workflows, registry activities) and/or a Docker-host builder')
    .option('--role <role>', 'orchestrator | builder | all', 'all')
    .action(async (o) => {
      const { runWorkers } = await import('./worker-command');
      await runWorkers({ role: o.role, config: globals().config, address: globals().address, namespace: globals().namespace });
    });

  program
    .command('ui')
    .description('serve the approvals web UI')
    .option('--host <address>', 'listen address', '127.0.0.1')
    .option('--port <port>', 'listen port', '8088')
    .option('--temporal-web <url>', 'Temporal Web base URL for links', process.env.TEMPORAL_WEB_URL ?? 'http://127.0.0.1:8233')
    .option('--rotate-session-secret', 'sign new sessions with a fresh secret; the old one verifies existing sessions for one ui.session.maxAge')
    .action(async (o) => {
      const { assertListenAllowed, buildUiServer } = await import('./ui/server');
      const config = loadConfig(globals().config);
      // Refused before connecting to anything: local sign-in mode on a reachable address lets anyone approve.
      assertListenAllowed(config, o.host);
      if (o.rotateSessionSecret) {
        const { defaultSecretFile, rotateSessionSecret } = await import('./ui/session-secret');
        rotateSessionSecret(config.ui?.session.secretFile ?? defaultSecretFile());
        log('session secret rotated: new sign-ins use the new secret; sessions signed with the old one last until they expire');
      }
      const s = temporalSettings();
      const namespace = globals().namespace ?? s.namespace;
      const app = await buildUiServer({ slipway: await connect(), config, namespace, temporalWebUrl: o.temporalWeb, host: o.host });
      const url = await app.listen({ host: o.host, port: Number(o.port) });
      log(`approvals UI on ${url}`);
      await new Promise<void>((resolve) => process.once('SIGTERM', () => void app.close().then(() => resolve())));
    });

  program
    .command('scan')
    .description('vulnerability scan tools')
    .command('evaluate')
    .description('judge a saved Trivy JSON report against a policy (exit 0 pass, 1 fail)')
    .requiredOption('--report <file>', 'Trivy JSON report (trivy image --format json)')
    .requiredOption('--policy <file|environment>', 'a policy YAML/JSON file, or an environment of slipway.yaml')
    .option('--now <date>', 'judge as of this date (allowlist expiry), default today')
    .action(async (o) => {
      const { evaluateReportFile } = await import('./scan-command');
      const { verdict, text } = evaluateReportFile({ report: o.report, policy: o.policy, configFile: globals().config, now: o.now });
      out(verdict, text);
      if (!verdict.pass) throw new Exit(EXIT.failed, undefined, '');
    });

  program
    .command('canary')
    .description('canary analysis tools')
    .command('judge')
    .description('judge canary against baseline metrics, as Kayenta does (exit 0 Pass, 1 Fail, 3 Marginal)')
    .option('--config <file>', 'judge config (YAML or JSON)')
    .requiredOption('--data <file>', '{ "metrics": [{ "name", "baseline": [..], "canary": [..] }] }')
    .action(async (o) => {
      // The program's own --config (slipway.yaml) takes the flag when it is given on the command line.
      const configFile = o.config ?? (program.getOptionValueSource('config') === 'cli' ? globals().config : undefined);
      if (!configFile) throw new UsageError('--config: the judge config file is required');
      const { judgeJson, renderJudge, runJudge } = await import('./canary-command');
      const r = runJudge(configFile, o.data);
      out(judgeJson(r), renderJudge(r));
      if (r.result !== 'Pass') throw new Exit(r.result === 'Fail' ? EXIT.failed : EXIT.rejected, undefined, '');
    });

  program
    .command('gitops')
    .description('GitOps delivery tools')
    .command('init')
    .description('write an environment repository for a service: base/, overlays/<env>/, flux/<env>.yaml (never over existing files)')
    .requiredOption('--service <name>', 'a service of slipway.yaml')
    .requiredOption('--environments <list>', 'comma-separated environments of slipway.yaml, e.g. qa,prod')
    .option('--dir <path>', 'where to write the layout (the repository\'s working tree)', '.')
    .option('--repo-url <url>', 'the repository\'s URL as Flux clones it (default: a placeholder to edit)')
    .option('--branch <name>', 'the branch Flux follows', 'main')
    .action(async (o) => {
      const { gitopsLayout, writeScaffold } = await import('./gitops-init');
      const { stringify } = await import('yaml');
      const environments = String(o.environments).split(',').map((e) => e.trim()).filter(Boolean);
      const { files, delivery } = gitopsLayout(loadConfig(globals().config), { service: o.service, environments, repoUrl: o.repoUrl, branch: o.branch });
      const written = writeScaffold(o.dir, files);
      out(
        { written, delivery },
        `wrote ${written.length} files under ${resolve(o.dir)}:\n${written.map((w) => `  ${w}`).join('\n')}\n` +
          `Each environment in slipway.yaml then needs its delivery section (and kubeContext/namespace), e.g.:\n${stringify(Object.fromEntries(Object.entries(delivery).map(([env, d]) => [env, { delivery: d }])), { lineWidth: 0 })}`,
      );
    });

  const stack = program.command('stack').description('the embedded local stack (Temporal dev server, Docker engine, registry, kwok clusters)');
  stack.command('up').action(async () => {
    const { stackUp } = await import('./stack');
    const { LOCAL_CLUSTERS } = await import('./stack/kubernetes');
    const { routerPorts } = await import('./stack/router');
    const s = await stackUp();
    out(
      { temporal: s.temporal, docker: s.docker, registry: { url: s.registry.url, username: s.registry.username, started: s.registry.started }, clusters: s.clusters, prometheus: s.prometheus, gitops: s.gitops ? { gitea: s.gitops.gitea.url, flux: Object.keys(s.gitops.flux) } : null },
      `Temporal ${s.temporal.address} (Web ${s.temporal.uiUrl ?? 'n/a'})\nDocker ${s.docker.host}\nRegistry ${s.registry.url} (user ${s.registry.username})\n` +
        `Kubernetes ${Object.values(s.clusters.contexts).join(', ')} (${Object.entries(s.clusters.actions).map(([e, a]) => `${e} ${a}`).join(', ')} in ${(s.clusters.ms / 1000).toFixed(1)}s; KUBECONFIG=${s.clusters.kubeconfig})\n` +
        `Routers (Traefik) ${LOCAL_CLUSTERS.map((c) => `${c} http://127.0.0.1:${routerPorts(c).web}`).join(', ')}\nPrometheus ${s.prometheus.url}\n${s.gitops ? `Gitea ${s.gitops.gitea.url} (tokens in its 0600 credentials file) · Flux on ${Object.keys(s.gitops.flux).join(', ')}` : 'GitOps (Gitea, Flux): not installed — bash scripts/install.sh --gitops'}`,
    );
  });
  stack.command('down').action(async () => {
    const { stackDown } = await import('./stack');
    const stopped = await stackDown();
    out({ stopped }, stopped.length ? `stopped ${stopped.join(', ')}` : 'nothing was running');
  });

  program
    .command('dev')
    .description('bring the local stack up, run the workers, and start a demo release of the sample service')
    .option('--version <semver>', 'demo release version', 'v1.0.2')
    .option('--no-release', 'only the stack and the workers')
    .option('--regression <kind>', 'release the sample with a planted regression its canary should catch: errors (20 % 5xx) or latency (+120 ms)')
    .action(async (o) => {
      const { runDev } = await import('./worker-command');
      await runDev({ config: globals().config, version: o.version, release: o.release, regression: o.regression });
    });

  return program;
}

function progressPrinter() {
  let last = '';
  let judged = 0;
  return (s: ReleaseStatus) => {
    const active = s.stages.find((x) => x.state === 'running' || x.state === 'waiting');
    const line = `${s.phase}${active ? ` · ${active.id} ${active.state}` : ''}`;
    if (line !== last) log(`… ${line}`);
    last = line;
    // Each canary interval once, as the judge scored it: what a person watching the rollout wants to see.
    const intervals = s.canary?.intervals ?? [];
    for (const i of intervals.slice(judged)) log(`  ${renderCanaryInterval(i)}`);
    judged = intervals.length;
  };
}

export async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  const out = (doc: unknown, human: string) => process.stdout.write(json ? `${JSON.stringify(doc, null, 2)}\n` : `${human}\n`);
  try {
    await buildProgram(out).parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof Exit) {
      if (err.payload !== undefined) out(err.payload, err.message);
      return err.code;
    }
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const message = (err as Error).message ?? String(err);
    if (json) process.stdout.write(`${JSON.stringify({ error: message, kind: (err as Error).name })}\n`);
    log(`error: ${message}`);
    if (err instanceof UsageError) return EXIT.usage;
    if (err instanceof ApprovalRefusedError) return EXIT.rejected;
    return EXIT.failed;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
