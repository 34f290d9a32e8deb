/**
 * The release workflow: build → scan → push → chart → deploy + smoke (first environment) → per later environment:
 * approval → scan → promote by digest → deploy + smoke. A failure or abort after a deploy rolls back what it touched.
 * Deterministic only: all I/O is in activities, all time is workflow time.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  patched,
  upsertMemo,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { describeApprovers, isApprover, refusalReason } from './approval';
import { ErrorTypes, explainFailure } from '../model/errors';
import { abortSignal, abortUpdate, approveUpdate, canaryUpdate, rejectUpdate, statusQuery } from './messages';
import { normaliseIdentity, readClaims, startSource, verifyDecisionToken, type DecisionAction, type DecisionClaims, type Expected, type TrustAnchors } from '../model/decision-token';
import { approvalRequestProblems, startRequestProblems } from '../model/requests';
import { planActs } from './plan-proxy';
import { judge } from './canary/judge';

const INBOX_MEMO_PATCH = 'inbox-memo';
/**
 * Runs started after this patch read their plan from the workers' configuration and accept only signed decisions;
 * runs from before (their input holds the plan) replay and continue as they were.
 */
const SIGNED_DECISIONS_PATCH = 'plan-from-workers-signed-decisions';
const CANARY_SCOPE_PATCH = 'canary-action-scope';
import { SA } from '../model/search-attributes';
import type {
  AbortRequest,
  ApprovalRequest,
  DecisionIdentity,
  ResolvedRelease,
  StartRequest,
  ApprovalResponse,
  CanaryActionRequest,
  CanaryStatus,
  DeployLockInput,
  DeployLockResult,
  EnvironmentPlan,
  InboxEntry,
  ReleaseInput,
  ReleasePhase,
  ReleaseResult,
  ReleaseStatus,
  RollbackResult,
  SmokeTestResult,
  StageKind,
  StartCanaryResult,
  StageStatus,
} from '../model/types';
import { releaseInputProblems } from '../model/rules';
import { describeViolations, evaluate, type ScanReport } from '../model/scan-policy';

import { buildActs, deployActs, hostActs, hostScanActs, kubeActs, lockActs, metricActs, registryActs, registryScanActs } from './proxies';

const iso = (ms: number = Date.now()): string => new Date(ms).toISOString();
const refOf = (env: EnvironmentPlan, tagOrDigest: string): string =>
  `${env.registry.host}/${env.repository}${tagOrDigest.startsWith('sha256:') ? '@' : ':'}${tagOrDigest}`;

/** The status the query returns; also what the workflow returns and what failures carry as details. */
class Release {
  readonly status: ReleaseStatus;
  approvalsFor = (env: string) => this.status.approvals.filter((a) => a.environment === env && a.decision === 'approved').length;

  constructor(
    readonly input: ReleaseInput,
    resolved?: { planned: ResolvedRelease; stage: StageStatus; requesterIdentity: DecisionIdentity },
  ) {
    const stages: StageStatus[] = resolved ? [resolved.stage] : [];
    const add = (id: string, kind: StageKind, environment?: string) => stages.push({ id, kind, environment, state: 'pending' });
    const first = input.environments[0];
    const deploys = input.environments.some((e) => e.deploy);
    const addDeploy = (env: EnvironmentPlan) => {
      if (!env.deploy) return;
      add(`deploy:${env.name}`, 'deploy', env.name);
      if (env.canary) add(`canary:${env.name}`, 'canary', env.name);
      if (env.deploy.smoke.length) add(`smoke:${env.name}`, 'smoke', env.name);
    };
    if (deploys) add('preflight', 'preflight');
    if (input.build) add('build', 'build');
    if (first.scan) add('scan', 'scan', first.name);
    add(input.build ? 'push' : 'import', input.build ? 'push' : 'import', first.name);
    if (deploys) add('chart', 'chart');
    addDeploy(first);
    for (const env of input.environments.slice(1)) {
      if (env.approval) add(`approval:${env.name}`, 'approval', env.name);
      if (env.scan) add(`scan:${env.name}`, 'scan', env.name);
      add(`promote:${env.name}`, 'promote', env.name);
      addDeploy(env);
    }
    this.status = {
      service: input.service,
      version: input.version,
      requester: input.requester,
      ...(resolved
        ? {
            requesterIdentity: resolved.requesterIdentity,
            plan: {
              source: resolved.planned.source,
              digest: resolved.planned.planDigest,
              trustedIssuers: resolved.planned.trust.issuers.map((i) => ({ name: i.name, selfAsserted: i.selfAsserted })),
            },
          }
        : {}),
      gitSha: input.gitSha,
      phase: 'running',
      references: {},
      stages,
      approvals: [],
      startedAt: iso(),
    };
  }

  stage(id: string): StageStatus {
    const s = this.status.stages.find((x) => x.id === id);
    if (!s) throw new Error(`no stage ${id}`);
    return s;
  }

  /** Stages that exist only when something goes wrong (rollbacks) are added when they start. */
  addStage(id: string, kind: StageKind, environment?: string): void {
    if (!this.status.stages.some((x) => x.id === id)) this.status.stages.push({ id, kind, environment, state: 'pending' });
  }

  begin(id: string, state: 'running' | 'waiting' = 'running'): void {
    const s = this.stage(id);
    s.state = state;
    s.startedAt = iso();
    upsertSearchAttributes([{ key: SA.stage, value: id }]);
  }

  end(id: string, state: 'succeeded' | 'failed' | 'cancelled' | 'skipped', result?: Record<string, unknown>, error?: string): void {
    const s = this.stage(id);
    s.state = state;
    s.endedAt = iso();
    if (result) s.result = result;
    if (error) s.error = error;
  }

  /** Runs one stage: marks it, records its result, and leaves a failed or cancelled mark when it throws. */
  async run<T extends object>(id: string, fn: () => Promise<T>): Promise<T> {
    this.begin(id);
    try {
      const result = await fn();
      this.end(id, 'succeeded', result as Record<string, unknown>);
      return result;
    } catch (err) {
      this.end(id, isCancellation(err) ? 'cancelled' : 'failed', undefined, explainFailure(err).message);
      throw err;
    }
  }

  /**
   * The approvals inbox reads one visibility list with memos instead of querying every release. Added after the
   * first histories were recorded, so it is behind a patch: replays of older runs skip it.
   */
  publishInbox(): void {
    if (!patched(INBOX_MEMO_PATCH)) return;
    const a = this.status.awaitingApproval;
    const inbox: InboxEntry | null = a
      ? {
          environment: a.environment,
          digest: this.status.digest,
          requester: this.status.requester,
          deadline: a.deadline,
          received: a.received,
          required: a.required,
          approvers: a.approvers,
          references: this.status.references,
          stages: this.status.stages.filter((s) => s.state === 'succeeded').map((s) => ({ id: s.id, endedAt: s.endedAt })),
        }
      : null;
    upsertMemo({ inbox });
  }

  setDigest(digest: string): void {
    this.status.digest = digest;
    upsertSearchAttributes([{ key: SA.digest, value: digest }]);
  }

  /** Appended to the final error: what compensation could not undo. */
  note?: string;

  finish(phase: ReleasePhase, error?: string): void {
    this.status.phase = phase;
    this.status.endedAt = iso();
    if (error) this.status.error = this.note ? `${error}\n${this.note}` : error;
    this.status.awaitingApproval = undefined;
    for (const s of this.status.stages) if (s.state === 'pending') s.state = 'skipped';
    this.publishInbox();
    upsertSearchAttributes([
      { key: SA.stage, value: phase === 'succeeded' ? 'done' : phase },
      { key: SA.awaitingApproval, value: '' },
    ]);
  }
}

function messageOf(err: unknown): string {
  let e: any = err;
  // Activity failures wrap the real cause; the innermost message is the useful one.
  while (e?.cause && (e.name === 'ActivityFailure' || e.name === 'ChildWorkflowFailure')) e = e.cause;
  return e?.message ?? String(err);
}

/** What a verified token says about who decided, as recorded in the status. */
const identityOf = (claims: DecisionClaims, trust: TrustAnchors): DecisionIdentity => ({
  issuer: claims.iss,
  method: claims.amr,
  // The local stack's key, and an edge's pick-a-name sign-in (UI local mode), assert identities nobody checked.
  selfAsserted: (trust.issuers.find((i) => i.name === claims.iss)?.selfAsserted ?? true) || claims.amr === 'local',
  tokenId: claims.jti,
});

const refused = (reason: string) => ApplicationFailure.nonRetryable(reason, ErrorTypes.ApprovalRefused);

/**
 * A new run: the start request names only the release and who asks. The plan and the trusted keys come from the
 * workers (recorded in the history with the plan's digest); the requester must hold a token signed for this start.
 */
async function resolveStart(raw: unknown): Promise<{ input: ReleaseInput; trust: TrustAnchors; resolved: ConstructorParameters<typeof Release>[1] }> {
  const problems = startRequestProblems(raw);
  if (problems.length) throw ApplicationFailure.nonRetryable(`invalid start request:\n${problems.join('\n')}`, ErrorTypes.InvalidInput);
  const req = raw as StartRequest;
  const stage: StageStatus = { id: 'plan', kind: 'plan', state: 'running', startedAt: iso() };
  const early: ReleaseStatus = { service: req.service, version: req.version, requester: normaliseIdentity(req.requester), phase: 'running', references: {}, stages: [stage], approvals: [], startedAt: iso() };
  setHandler(statusQuery, () => early);
  const fail = (message: string, type: string) => {
    Object.assign(stage, { state: 'failed', endedAt: iso(), error: message });
    Object.assign(early, { phase: 'failed', error: message, endedAt: iso() });
    upsertSearchAttributes([{ key: SA.stage, value: 'failed' }]);
    return ApplicationFailure.nonRetryable(message, type, early);
  };
  let planned: ResolvedRelease;
  try {
    planned = await planActs.resolveRelease({ service: req.service, version: req.version, requester: req.requester, ...(req.gitSha ? { gitSha: req.gitSha } : {}), ...(req.image ? { image: req.image } : {}) });
  } catch (err) {
    throw fail(`the workers' configuration refuses this release: ${messageOf(err)}`, (err as any)?.cause?.type ?? ErrorTypes.PlanRefused);
  }
  // Bound to what is released, and judged as of the run's start: a slow queue must not expire a valid request.
  const v = verifyDecisionToken(req.requesterToken, planned.trust, { act: 'start', rel: workflowInfo().workflowId, src: startSource(req) }, workflowInfo().runStartTime.getTime(), new Set());
  if (!v.ok) throw fail(`requester not verified: ${v.reason}`, ErrorTypes.Unauthenticated);
  if (v.claims.sub !== planned.plan.requester) throw fail(`requester not verified: the token is ${v.claims.sub}'s, the request names ${planned.plan.requester}`, ErrorTypes.Unauthenticated);
  const requesterIdentity = identityOf(v.claims, planned.trust);
  Object.assign(stage, { state: 'succeeded', endedAt: iso(), result: { source: planned.source, planDigest: planned.planDigest, requester: v.claims.sub, verifiedBy: v.claims.iss, method: v.claims.amr, selfAsserted: requesterIdentity.selfAsserted } });
  return { input: planned.plan, trust: planned.trust, resolved: { planned, stage, requesterIdentity } };
}

export async function releaseWorkflow(rawInput: StartRequest | ReleaseInput): Promise<ReleaseResult> {
  let input: ReleaseInput;
  let trust: TrustAnchors | undefined;
  let resolved: ConstructorParameters<typeof Release>[1];
  if (patched(SIGNED_DECISIONS_PATCH)) ({ input, trust, resolved } = await resolveStart(rawInput));
  else input = rawInput as ReleaseInput;
  const problems = releaseInputProblems(input);
  if (problems.length) throw ApplicationFailure.nonRetryable(`invalid release input:\n${problems.join('\n')}`, ErrorTypes.InvalidInput);
  const release = new Release(input, resolved);
  const status = release.status;
  const { workflowId, runId } = workflowInfo();
  let rejection: { by: string; comment?: string } | undefined;
  let abort: AbortRequest | undefined;
  /** Token ids already accepted: each decision token counts once. */
  const used = new Set<string>();

  setHandler(statusQuery, () => status);

  const context = () => ({
    requester: input.requester,
    digest: status.digest,
    awaiting: status.awaitingApproval
      ? { environment: status.awaitingApproval.environment, policy: input.environments.find((e) => e.name === status.awaitingApproval!.environment)!.approval! }
      : undefined,
    approvals: status.approvals,
  });
  /** Signed runs: the token, verified against the keys pinned at start; throws the refusal. */
  const verified = (token: unknown, expect: Omit<Expected, 'rel' | 'run'>): DecisionClaims => {
    const v = verifyDecisionToken(token, trust!, { ...expect, rel: workflowId, run: runId }, Date.now(), used);
    if (!v.ok) throw refused(v.reason);
    return v.claims;
  };
  /** The identity a decision is recorded under: the token's (signed runs), else the request's, normalised. */
  const decider = (token: unknown, asserted: string | undefined) => {
    const claims = trust ? readClaims(token) : undefined;
    // The validator verified this token; a signed run never records an unsigned name.
    if (trust && !claims) throw refused('token: a signed decision token is required');
    if (claims) used.add(claims.jti);
    return { who: claims ? claims.sub : normaliseIdentity(asserted ?? ''), claims, identity: claims ? identityOf(claims, trust!) : undefined };
  };
  /** Groups count only from an edge that authenticated them; a self-asserted token's groups are ignored. */
  const vouchedGroups = (claims: DecisionClaims) => (identityOf(claims, trust!).selfAsserted ? [] : (claims.groups ?? []));

  const decide = (decision: 'approved' | 'rejected') => (req: ApprovalRequest): ApprovalResponse => {
    const environment = status.awaitingApproval!.environment;
    const { who, claims, identity } = decider(req.token, req.approver);
    const comment = claims ? claims.note : req.comment;
    status.approvals.push({ environment, approver: who, decision, comment, at: iso(), ...(identity ? { identity } : {}) });
    const received = release.approvalsFor(environment);
    status.awaitingApproval!.received = received;
    if (decision === 'rejected') rejection = { by: who, comment };
    const required = status.awaitingApproval!.required;
    release.publishInbox();
    return { environment, decision, received, required, complete: decision === 'rejected' || received >= required };
  };
  const validator = (decision: 'approved' | 'rejected') => (req: ApprovalRequest): void => {
    const shape = approvalRequestProblems(req);
    if (shape.length) throw refused(shape.join('; '));
    if (!trust) {
      const reason = refusalReason(context(), req, decision);
      if (reason) throw refused(reason);
      return;
    }
    if (!status.awaitingApproval) throw refused('this release is not awaiting approval');
    const env = status.awaitingApproval.environment;
    if (req.environment !== undefined && req.environment !== env) throw refused(`this release awaits approval for "${env}", not "${req.environment}"`);
    const claims = verified(req.token, { act: decision === 'approved' ? 'approve' : 'reject', env, dig: status.digest ?? 'none' });
    // Fields sent beside the token must say what it says: nothing unsigned is believed.
    if (req.approver !== undefined && normaliseIdentity(req.approver) !== claims.sub) throw refused(`approver: the token is ${claims.sub}'s, the request names ${req.approver}`);
    if (req.digest !== undefined && req.digest !== claims.dig) throw refused(`digest: the request names ${req.digest}, the token ${claims.dig}`);
    if (req.comment !== undefined && req.comment !== (claims.note ?? '')) throw refused('comment: differs from the comment signed in the token');
    const reason = refusalReason(context(), { approver: claims.sub, groups: vouchedGroups(claims), environment: claims.env, digest: claims.dig }, decision);
    if (reason) throw refused(reason);
  };
  setHandler(approveUpdate, decide('approved'), { validator: validator('approved') });
  setHandler(rejectUpdate, decide('rejected'), { validator: validator('rejected') });

  const pipeline = new CancellationScope();
  const finished = () => Boolean(abort) || ['succeeded', 'failed', 'rejected', 'expired', 'aborted'].includes(status.phase);
  const doAbort = (req: AbortRequest) => {
    const { who, claims, identity } = decider(req.token, req.by);
    abort = { reason: (claims ? claims.note : req?.reason?.slice(0, 2000)) || 'no reason given', by: who || 'unknown' };
    status.abort = { ...abort, at: iso(), ...(identity ? { identity } : {}) };
    pipeline.cancel();
  };
  /** Who may abort a signed run: its requester, or an approver of any of its environments. */
  const abortRefusal = (req: AbortRequest): string | undefined => {
    if (finished()) return 'the release has already ended or is being aborted';
    let claims: DecisionClaims;
    try {
      claims = verified(req?.token, { act: 'abort', dig: status.digest ?? 'none' });
    } catch (err) {
      return (err as Error).message;
    }
    const approver = input.environments.some((e) => e.approval && isApprover(e.approval, claims.sub, vouchedGroups(claims)));
    if (claims.sub !== input.requester && !approver) return `${claims.sub} may not abort this release: only its requester or an approver of one of its environments`;
    return undefined;
  };
  setHandler(abortSignal, (req) => {
    if (finished()) return;
    // Signed runs: a signal cannot be refused, so one without a valid token is ignored (and says so in the log).
    if (trust) {
      const reason = abortRefusal(req);
      if (reason) return log.warn('abort signal ignored', { reason });
    }
    doAbort(req);
  });
  setHandler(abortUpdate, (req) => (doAbort(req), { aborted: true }), {
    validator: (req) => {
      if (!trust) throw refused('this release predates signed decisions: use the abort signal');
      const reason = abortRefusal(req);
      if (reason) throw refused(reason);
    },
  });

  const deploys = new Deploys(input, release);
  setHandler(
    canaryUpdate,
    (req) => {
      const { who, claims, identity } = decider(req.token, req.by);
      const c = status.canary!;
      return deploys.canaryAction({ ...req, by: who, ...(claims ? { reason: claims.note, environment: c.environment, step: c.step } : {}) }, identity);
    },
    {
      validator: (req) => {
        const c = status.canary;
        if (!c || !['running', 'paused', 'awaiting-decision'].includes(c.state)) throw ApplicationFailure.nonRetryable('no canary analysis is running', ErrorTypes.InvalidInput);
        if (!req || !['promote', 'skip', 'rollback'].includes(req.action)) throw ApplicationFailure.nonRetryable('action must be promote, skip or rollback', ErrorTypes.InvalidInput);
        if (!trust) {
          if (!req.by) throw ApplicationFailure.nonRetryable('by: who acts must be named', ErrorTypes.InvalidInput);
          return;
        }
        const claims = verified(req.token, { act: `canary:${req.action}` as DecisionAction, env: c.environment, dig: status.digest ?? 'none', step: c.step });
        const policy = input.environments.find((e) => e.name === c.environment)?.approval;
        // The environment's approvers steer its canary; without an approval policy, only the release's requester.
        const allowed = policy ? isApprover(policy, claims.sub, vouchedGroups(claims)) : claims.sub === input.requester;
        if (!allowed) throw refused(`${claims.sub} is not an approver for "${c.environment}" and may not steer its canary`);
      },
    },
  );
  try {
    await pipeline.run(() => runPipeline(input, release, () => rejection, deploys));
    await deploys.unlockAll();
    release.finish('succeeded');
    log.info('release succeeded', { digest: status.digest });
    return status;
  } catch (err) {
    // Compensation: every environment this release touched goes back to the revision it found there.
    release.note = await deploys.rollBackAll(abort ? `aborted by ${abort.by}: ${abort.reason}` : messageOf(err));
    await deploys.unlockAll();
    if (abort && isCancellation(err)) {
      release.finish('aborted', `aborted by ${abort.by}: ${abort.reason}`);
      throw ApplicationFailure.nonRetryable(status.error!, ErrorTypes.ReleaseAborted, status);
    }
    if (err instanceof ApplicationFailure && (err.type === ErrorTypes.ApprovalRejected || err.type === ErrorTypes.ApprovalExpired)) {
      release.finish(err.type === ErrorTypes.ApprovalRejected ? 'rejected' : 'expired', err.message);
      throw ApplicationFailure.nonRetryable(err.message, err.type, status);
    }
    // One vocabulary: a timed-out or exhausted step fails with its own type and says which bound it hit.
    const { type, message } = explainFailure(err);
    release.finish('failed', message);
    throw ApplicationFailure.nonRetryable(message, type, status);
  }
}

async function runPipeline(
  input: ReleaseInput,
  release: Release,
  rejected: () => { by: string; comment?: string } | undefined,
  deploys: Deploys,
): Promise<void> {
  const status = release.status;
  const [first, ...later] = input.environments;
  const landing = refOf(first, input.version);

  // Before anything is built or pushed: every cluster is known to the workers and answers.
  if (deploys.any) await release.run('preflight', () => deploys.preflight());

  let lastScan: ScanReport | undefined;
  /** Runs a scan stage: obtains a report (fresh or reused), judges it by `env`'s policy, fails before any push. */
  const scanGate = async (id: string, env: EnvironmentPlan, report: () => Promise<{ report: ScanReport; rescanned: boolean }>) => {
    release.begin(id);
    let outcome: { report: ScanReport; rescanned: boolean };
    try {
      outcome = await report();
    } catch (err) {
      release.end(id, isCancellation(err) ? 'cancelled' : 'failed', undefined, messageOf(err));
      throw err;
    }
    lastScan = outcome.report;
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
  };

  if (input.build) {
    const built = await release.run('build', () =>
      buildActs.buildImage({
        service: input.service,
        version: input.version,
        gitSha: input.gitSha,
        source: input.source,
        created: status.startedAt,
        context: input.build!.context,
        dockerfile: input.build!.dockerfile,
        args: input.build!.args,
        tag: landing,
      }),
    );
    if (first.scan) {
      await scanGate('scan', first, async () => {
        const report = await hostScanActs(built.hostQueue).scanImage({ image: built.tag, source: 'docker' });
        // The scan must be of the image just built, not of whatever the tag points at by now.
        if (report.imageId && report.imageId !== built.imageId) {
          throw ApplicationFailure.nonRetryable(`scanned image ${report.imageId} is not the built image ${built.imageId}`, ErrorTypes.DigestMismatch);
        }
        return { report, rescanned: false };
      });
    }
    const pushed = await release.run('push', () => hostActs(built.hostQueue).pushImage({ tag: built.tag, registry: first.registry }));
    release.setDigest(pushed.digest);
    status.references[first.name] = pushed.reference;
  } else {
    // When the image lives in a registry slipway.yaml knows, name it, so the worker finds that registry's credentials.
    const sourceHost = input.image!.slice(0, input.image!.indexOf('/'));
    const sourceRegistry = input.environments.find((e) => e.registry.host === sourceHost)?.registry;
    let scannedDigest: string | undefined;
    if (first.scan) {
      await scanGate('scan', first, async () => {
        const report = await registryScanActs.scanImage({ image: input.image!, source: 'registry', ...(sourceRegistry ? { registry: sourceRegistry } : {}) });
        scannedDigest = report.digest;
        return { report, rescanned: false };
      });
    }
    // Import exactly what was scanned: if the tag moved in between, the copy fails with DigestMismatchError.
    const imported = await release.run('import', () =>
      registryActs.copyImage({
        source: input.image!,
        ...(sourceRegistry ? { sourceRegistry } : {}),
        target: landing,
        targetRegistry: first.registry,
        ...(scannedDigest ? { expectDigest: scannedDigest } : {}),
      }),
    );
    release.setDigest(imported.digest);
    status.references[first.name] = landing;
  }

  if (deploys.any) {
    const chart = await release.run('chart', () =>
      buildActs.packageChart({ service: input.service, version: input.version, chartPath: input.chart!.path, registry: first.registry, repository: input.chart!.repository }),
    );
    status.chart = { reference: chart.reference, digest: chart.digest };
  }
  if (first.deploy) await deploys.deploy(first, later.length > 0);

  let from = first;
  for (const env of later) {
    if (env.approval) await awaitApproval(env, release, rejected);
    const digest = status.digest!;
    if (env.scan) {
      const source = from;
      await scanGate(`scan:${env.name}`, env, async () => {
        // New CVEs are published after the build: a scan older than the policy allows is repeated on the registry copy.
        const age = lastScan ? Date.now() - Date.parse(lastScan.scannedAt) : Infinity;
        if (lastScan && (env.scan!.rescanAfterMs === undefined || age <= env.scan!.rescanAfterMs)) return { report: lastScan, rescanned: false };
        const report = await registryScanActs.scanImage({ image: refOf(source, digest), source: 'registry', registry: source.registry });
        if (report.digest && report.digest !== digest) {
          throw ApplicationFailure.nonRetryable(`rescanned ${report.digest}, the release is ${digest}`, ErrorTypes.DigestMismatch);
        }
        return { report, rescanned: true };
      });
    }
    await release.run(`promote:${env.name}`, () =>
      registryActs.copyImage({
        source: refOf(from, digest),
        sourceRegistry: from.registry,
        target: refOf(env, input.version),
        targetRegistry: env.registry,
        expectDigest: digest,
      }),
    );
    status.references[env.name] = refOf(env, input.version);
    from = env;
    if (env.deploy) await deploys.deploy(env, env !== later[later.length - 1]);
  }
}

const describe = (i: { metrics: { name: string; classification: string }[] }) =>
  i.metrics.filter((m) => m.classification !== 'Pass').map((m) => `${m.name} ${m.classification}`).join(', ') || 'all metrics pass';

interface Touched {
  env: EnvironmentPlan;
  previousRevision: number;
}

/**
 * The deploy side of a release: one lock per environment (a Lease named after the service), the revision found
 * before each deploy, and the rollbacks when the release fails or is aborted after touching an environment.
 */
class Deploys {
  readonly any: boolean;
  private readonly touched: Touched[] = [];
  private readonly locks = new Map<string, DeployLockInput>();
  /** Live canaries by environment: removed on promotion, or by compensation. */
  private readonly canaries = new Map<string, EnvironmentPlan>();
  private pending: CanaryActionRequest | undefined;
  private readonly releaseId = workflowInfo().workflowId;
  private readonly runId = workflowInfo().runId;

  constructor(
    private readonly input: ReleaseInput,
    private readonly release: Release,
  ) {
    this.any = input.environments.some((e) => e.deploy);
  }

  private lockInput(env: EnvironmentPlan, whenBusy: 'wait' | 'refuse' = env.deploy!.whenBusy): DeployLockInput {
    return { service: this.input.service, environment: env.name, target: env.deploy!.target, holder: this.releaseId, whenBusy, note: `${this.input.version} by ${this.input.requester}` };
  }

  async preflight(): Promise<Record<string, unknown>> {
    const found: Record<string, unknown> = {};
    for (const env of this.input.environments.filter((e) => e.deploy)) {
      const state = await kubeActs.inspectDeploy({ service: this.input.service, target: env.deploy!.target });
      found[env.name] = { context: env.deploy!.target.context, namespace: env.deploy!.target.namespace, deployed: state };
    }
    return { environments: found };
  }

  private async lock(env: EnvironmentPlan, whenBusy?: 'wait' | 'refuse'): Promise<DeployLockResult> {
    const req = this.lockInput(env, whenBusy);
    try {
      const r = await lockActs(env.deploy!.busyTimeoutMs).acquireDeployLock(req);
      this.locks.set(env.name, req);
      return r;
    } catch (err) {
      if ((err as any)?.cause?.name === 'TimeoutFailure') {
        throw ApplicationFailure.nonRetryable(`${env.name} stayed busy with another release of ${this.input.service} for ${env.deploy!.busyTimeoutMs} ms`, ErrorTypes.EnvironmentBusy);
      }
      throw err;
    }
  }

  private async unlock(env: string): Promise<void> {
    const req = this.locks.get(env);
    if (!req) return;
    await kubeActs.releaseDeployLock(req);
    this.locks.delete(env);
  }

  async unlockAll(): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      for (const env of [...this.locks.keys()]) await this.unlock(env).catch((err) => log.warn('could not release a deploy lock', { env, error: messageOf(err) }));
    });
  }

  /**
   * Lock → capture the current revision → upgrade by digest → smoke test. With a canary plan and a release already
   * running there, the upgrade waits: the new image runs as a canary first and Helm changes only on promotion.
   */
  async deploy(env: EnvironmentPlan, unlockAfter: boolean): Promise<void> {
    const plan = env.deploy!;
    const status = this.release.status;
    const repository = `${env.registry.host}/${env.repository}`;
    const image = `${repository}@${status.digest}`;
    let canary: StartCanaryResult | undefined;
    let previousRevision = 0;
    await this.release.run(`deploy:${env.name}`, async () => {
      const lock = await this.lock(env);
      const before = await kubeActs.inspectDeploy({ service: this.input.service, target: plan.target });
      previousRevision = before.revision;
      status.deployments = { ...(status.deployments ?? {}), [env.name]: { ...plan.target, release: this.input.service, previousRevision, image, state: 'deploying' } };
      if (env.canary && before.revision > 0) {
        const weights = env.canary.steps.flatMap((s, step) => ('setWeight' in s ? [{ step, weight: s.setWeight }] : []));
        canary = await kubeActs.startCanary({ releaseId: this.releaseId, service: this.input.service, environment: env.name, target: plan.target, image, traffic: env.canary.traffic, weights });
        this.canaries.set(env.name, env);
        status.deployments[env.name].state = 'canary';
        return { canary: canary.canary, stableImage: canary.stableImage, stableReplicas: canary.stableReplicas, previousRevision, lock };
      }
      const r = await this.upgrade(env, image, previousRevision);
      return { ...r, previousRevision, ...(before.appVersion ? { previousVersion: before.appVersion } : {}), lock };
    });
    if (env.canary) {
      const id = `canary:${env.name}`;
      if (!canary) this.release.end(id, 'skipped', { note: 'nothing was deployed here before: there is no baseline to compare with, so the release was deployed directly' });
      else {
        await this.release.run(id, async () => {
          const analysis = await this.analyse(env, canary!);
          // Promotion: the canary's image becomes the stable one (a Helm upgrade), then the canary goes.
          this.release.status.canary!.state = 'promoting';
          const r = await this.upgrade(env, image, previousRevision);
          await kubeActs.removeCanary({ service: this.input.service, target: plan.target, traffic: env.canary!.traffic });
          this.canaries.delete(env.name);
          this.release.status.canary!.state = 'promoted';
          return { ...analysis, promotedRevision: r.revision };
        });
      }
    }
    if (plan.smoke.length) {
      await this.release.run(`smoke:${env.name}`, async () => {
        const checks: SmokeTestResult[] = [];
        for (const check of plan.smoke) checks.push(await kubeActs.smokeTest({ service: this.input.service, environment: env.name, target: plan.target, check }));
        return { checks };
      });
    }
    if (unlockAfter) await this.unlock(env.name);
  }

  /** `helm upgrade --install --wait` of the release's chart and digest; the environment counts as touched from here. */
  private async upgrade(env: EnvironmentPlan, image: string, previousRevision: number) {
    const plan = env.deploy!;
    const status = this.release.status;
    const record = status.deployments![env.name];
    this.touched.push({ env, previousRevision });
    const r = await deployActs(plan.timeoutMs).deployChart({
      releaseId: this.releaseId,
      runId: this.runId,
      service: this.input.service,
      version: this.input.version,
      environment: env.name,
      target: plan.target,
      chart: { registry: this.input.environments[0].registry, repository: this.input.chart!.repository, digest: status.chart!.digest },
      image: { repository: image.slice(0, image.indexOf('@')), digest: status.digest! },
      values: plan.values,
      ...(plan.imageValues ? { imageValues: plan.imageValues } : {}),
      timeoutMs: plan.timeoutMs,
      owner: this.input.requester,
      changeCause: `slipway ${this.input.service} ${this.input.version} (${this.releaseId}) by ${this.input.requester}`,
    });
    record.revision = r.revision;
    record.state = 'deployed';
    return r;
  }

  /** What an operator asked of the running canary; the analysis loop acts on it at its next wake-up. */
  canaryAction(req: CanaryActionRequest, identity?: DecisionIdentity): CanaryStatus {
    const c = this.release.status.canary!;
    this.pending = req;
    c.decision = { action: req.action, by: req.by, ...(req.reason ? { reason: req.reason } : {}), at: iso(), ...(identity ? { identity } : {}) };
    return c;
  }

  /**
   * The canary steps: set a weight, analyse (judge cumulative measurements at each interval; a score at or below
   * marginal fails at once, the last must reach pass, an inconclusive one asks a person), or pause.
   */
  private async analyse(env: EnvironmentPlan, started: StartCanaryResult): Promise<Record<string, unknown>> {
    const plan = env.canary!;
    const target = env.deploy!.target;
    const c: CanaryStatus = { environment: env.name, state: 'running', step: 0, weight: 0, intervals: [] };
    this.release.status.canary = c;
    // An action sent to an earlier environment's canary must not steer this one (it would promote with no analysis).
    if (patched(CANARY_SCOPE_PATCH)) this.pending = undefined;
    const { pass, marginal } = plan.judge.thresholds;
    const take = (action: CanaryActionRequest['action']) => this.pending?.action === action && (this.pending.environment === undefined || this.pending.environment === env.name);
    const rolledBack = () => {
      const p = this.pending!;
      return ApplicationFailure.nonRetryable(`canary rolled back by ${p.by}${p.reason ? `: ${p.reason}` : ''}`, ErrorTypes.CanaryFailed, c);
    };
    /** Waits up to `ms` for an operator's action; true when one arrived. */
    const wait = async (ms: number) => condition(() => this.pending !== undefined, ms);
    // Each judgement covers the canary's whole measured life so far (Kayenta's "lifetime" window): more points, more power.
    let since: number | undefined;
    for (let i = 0; i < plan.steps.length && !take('promote'); i++) {
      const step = plan.steps[i];
      c.step = i;
      if (take('rollback')) throw rolledBack();
      if (take('skip')) this.pending = undefined;
      if ('setWeight' in step) {
        const r = await kubeActs.setCanaryWeight({ service: this.input.service, target, traffic: plan.traffic, weight: step.setWeight, stableReplicas: started.stableReplicas });
        c.weight = r.weight;
        continue;
      }
      if ('pause' in step) {
        c.state = 'paused';
        const acted = await wait(step.pause.durationMs ?? plan.decisionTimeoutMs);
        if (!acted && step.pause.durationMs === undefined) throw ApplicationFailure.nonRetryable(`nobody promoted the canary within ${plan.decisionTimeoutMs} ms`, ErrorTypes.CanaryFailed, c);
        if (take('rollback')) throw rolledBack();
        c.state = 'running';
        continue;
      }
      const start = Date.now();
      since ??= start;
      const end = start + step.analysis.durationMs;
      let last: CanaryStatus['intervals'][number] | undefined;
      for (let t = start; t < end; ) {
        const next = Math.min(t + step.analysis.intervalMs, end);
        if (await wait(next - Date.now())) break;
        const m = await metricActs.measureCanary({ prometheusUrl: plan.prometheus.url, queries: plan.queries, start: iso(since), end: iso(next), stepSeconds: plan.prometheus.stepSeconds });
        const r = judge(plan.judge, m.metrics);
        last = { step: i, at: iso(), weight: c.weight, score: r.score, result: r.result, metrics: r.metrics.map((x) => ({ name: x.name, classification: x.classification, deviation: x.deviation })) };
        c.intervals.push(last);
        if (r.score <= marginal) {
          throw ApplicationFailure.nonRetryable(`canary failed analysis: score ${r.score.toFixed(1)} ≤ marginal ${marginal} (${describe(last)})`, ErrorTypes.CanaryFailed, c);
        }
        t = next;
      }
      if (take('rollback')) throw rolledBack();
      if (this.pending || !last || last.score >= pass) continue;
      // Between marginal and pass: not bad enough to fail, not good enough to promote. A person decides.
      c.state = 'awaiting-decision';
      c.awaitingUntil = iso(Date.now() + plan.decisionTimeoutMs);
      const acted = await wait(plan.decisionTimeoutMs);
      c.awaitingUntil = undefined;
      if (!acted) throw ApplicationFailure.nonRetryable(`canary inconclusive (score ${last.score.toFixed(1)}) and no decision within ${plan.decisionTimeoutMs} ms`, ErrorTypes.CanaryFailed, c);
      if (take('rollback')) throw rolledBack();
      c.state = 'running';
    }
    if (take('rollback')) throw rolledBack();
    const final = c.intervals.at(-1);
    return { intervals: c.intervals.length, finalScore: final?.score, finalResult: final?.result, ...(this.pending ? { decision: c.decision } : {}) };
  }

  /** Rolls back every touched environment, newest first; returns a note when a rollback could not be done. */
  async rollBackAll(reason: string): Promise<string | undefined> {
    if (!this.touched.length && !this.canaries.size) return undefined;
    const problems: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      // A live canary goes first: traffic back to stable, the canary's Deployment and Service removed.
      for (const [name, env] of [...this.canaries]) {
        try {
          await kubeActs.removeCanary({ service: this.input.service, target: env.deploy!.target, traffic: env.canary!.traffic });
          this.canaries.delete(name);
          const c = this.release.status.canary;
          if (c?.environment === name) c.state = 'rolled-back';
          const record = this.release.status.deployments?.[name];
          if (record?.state === 'canary') record.state = 'rolled-back';
        } catch (err) {
          problems.push(`removing the canary in ${name} failed: ${messageOf(err)}`);
        }
      }
      for (const t of [...this.touched].reverse()) {
        const id = `rollback:${t.env.name}`;
        this.release.addStage(id, 'rollback', t.env.name);
        const record = this.release.status.deployments?.[t.env.name];
        try {
          const r = await this.release.run(id, async () => {
            // A newer release of the service may hold the environment by now; then this one must not touch it.
            if (!this.locks.has(t.env.name)) {
              const got = await this.lock(t.env, 'refuse').catch((err) => err);
              if (got instanceof Error) return { action: 'skipped', toRevision: t.previousRevision, note: messageOf(got) } as RollbackResult;
            }
            return kubeActs.rollbackDeploy({
              releaseId: this.releaseId,
              runId: this.runId,
              service: this.input.service,
              environment: t.env.name,
              target: t.env.deploy!.target,
              toRevision: t.previousRevision,
              reason,
              timeoutMs: t.env.deploy!.timeoutMs,
            });
          });
          if (record) record.state = r.action === 'skipped' ? 'rollback-skipped' : 'rolled-back';
        } catch (err) {
          if (record) record.state = 'rollback-failed';
          problems.push(`rollback of ${t.env.name} failed: ${messageOf(err)}`);
        }
      }
    });
    return problems.length ? problems.join('\n') : undefined;
  }
}

async function awaitApproval(env: EnvironmentPlan, release: Release, rejected: () => { by: string; comment?: string } | undefined): Promise<void> {
  const policy = env.approval!;
  const status = release.status;
  const id = `approval:${env.name}`;
  const deadline = Date.now() + policy.timeoutMs;
  release.begin(id, 'waiting');
  status.phase = 'awaiting-approval';
  status.awaitingApproval = {
    environment: env.name,
    required: policy.minApprovals,
    received: release.approvalsFor(env.name),
    deadline: iso(deadline),
    approvers: describeApprovers(policy),
  };
  upsertSearchAttributes([{ key: SA.awaitingApproval, value: env.name }]);
  release.publishInbox();
  try {
    const decided = await condition(() => Boolean(rejected()) || release.approvalsFor(env.name) >= policy.minApprovals, policy.timeoutMs);
    const approvers = status.approvals.filter((a) => a.environment === env.name);
    const r = rejected();
    if (r) {
      release.end(id, 'failed', { approvals: approvers }, `rejected by ${r.by}${r.comment ? `: ${r.comment}` : ''}`);
      throw ApplicationFailure.nonRetryable(`release rejected for ${env.name} by ${r.by}${r.comment ? `: ${r.comment}` : ''}`, ErrorTypes.ApprovalRejected);
    }
    if (!decided && policy.onTimeout === 'reject') {
      release.end(id, 'failed', { approvals: approvers }, `approval deadline ${iso(deadline)} passed`);
      throw ApplicationFailure.nonRetryable(
        `approval for ${env.name} expired at ${iso(deadline)} with ${approvers.length}/${policy.minApprovals} approvals`,
        ErrorTypes.ApprovalExpired,
      );
    }
    release.end(id, 'succeeded', { approvals: approvers, ...(decided ? {} : { autoApprovedAt: iso(), reason: 'deadline passed; policy onTimeout=approve' }) });
  } catch (err) {
    if (isCancellation(err)) release.end(id, 'cancelled');
    throw err;
  } finally {
    status.awaitingApproval = undefined;
    if (status.phase === 'awaiting-approval') status.phase = 'running';
    upsertSearchAttributes([{ key: SA.awaitingApproval, value: '' }]);
    release.publishInbox();
  }
}
