/** The typed client library: what the CLI (and later the UI) call. Returns data; prints nothing. */
import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateStage,
  type WorkflowHandle,
} from '@temporalio/client';
import { ErrorTypes } from '../model/errors';
import { abortSignal, abortUpdate, approveUpdate, canaryUpdate, gitopsPullRequestChangedUpdate, rejectUpdate, statusQuery } from '../workflows/messages';
import type { DecisionTokens } from './identity/tokens';
import { readClaims, startSource } from '../model/decision-token';
import { ORCHESTRATOR_QUEUE } from '../model/queues';
import { releaseWorkflowId } from '../model/identifiers';
import { SA } from '../model/search-attributes';
import { parseInboxEntry } from '../model/inbox';
import { rollbackWorkflowId, TERMINAL_PHASES, type CanaryActionRequest, type CanaryStatus, type RollbackRequest, type RollbackResult, type InboxEntry, type ApprovalRequest, type ApprovalResponse, type ReleaseStatus, type StartRequest } from '../model/types';
import type { releaseWorkflow } from '../workflows/release';
import { UsageError } from '../model/errors';

export class ApprovalRefusedError extends Error {
  override name = 'ApprovalRefusedError';
}

export interface StartResult {
  workflowId: string;
  runId: string;
  /** True when a release with this id already existed and this call attached to it. */
  attached: boolean;
}

/** The Update a gitops release waits on for its pull request (the workflow re-reads the pull request itself). */
export const GITOPS_PULL_REQUEST_UPDATE = gitopsPullRequestChangedUpdate.name;

/** What became of a forge webhook's wake-up: sent, no such running release here, or refused by the workflow. */
export type PullRequestNotice = { outcome: 'sent' } | { outcome: 'not-found' } | { outcome: 'refused'; message: string };

export interface ReleaseSummary {
  workflowId: string;
  runId: string;
  status: string;
  service?: string;
  version?: string;
  stage?: string;
  awaitingApproval?: string;
  requester?: string;
  digest?: string;
  startTime: string;
  /** Set while the release waits at a gate (from the workflow's memo; no query needed). */
  inbox?: InboxEntry;
}

export class SlipwayClient {
  constructor(
    readonly client: Client,
    readonly taskQueue: string = ORCHESTRATOR_QUEUE,
    /** Signs this client's start requests and decisions (the local key, or an edge's); without it, none are signed. */
    readonly tokens?: DecisionTokens,
  ) {}

  static async connect(address: string, namespace: string, tokens?: DecisionTokens): Promise<SlipwayClient> {
    const connection = await Connection.connect({ address });
    return new SlipwayClient(new Client({ connection, namespace }), ORCHESTRATOR_QUEUE, tokens);
  }

  /** The run and status a decision is bound to; the token names both, so a decision cannot be replayed elsewhere. */
  private async bindings(workflowId: string): Promise<{ runId: string; status: ReleaseStatus }> {
    const [d, status] = await Promise.all([this.handle(workflowId).describe(), this.status(workflowId)]);
    return { runId: d.runId, status };
  }

  handle(workflowId: string): WorkflowHandle<typeof releaseWorkflow> {
    return this.client.workflow.getHandle<typeof releaseWorkflow>(workflowId);
  }

  /** Starts a release: only which release and who asks (the workers hold the plan); the requester signs the start. */
  async start(req: StartRequest): Promise<StartResult> {
    const workflowId = releaseWorkflowId(req.service, req.version);
    const requesterToken = req.requesterToken ?? (await this.tokens?.token({ sub: req.requester, rel: workflowId, act: 'start', src: startSource(req) }));
    // Behind a token exchange the requester is whoever the CI identity says, not what the caller typed.
    const requester = readClaims(requesterToken)?.sub ?? req.requester;
    const input: StartRequest = {
      service: req.service,
      version: req.version,
      requester,
      ...(req.gitSha ? { gitSha: req.gitSha } : {}),
      ...(req.image ? { image: req.image } : {}),
      ...(requesterToken ? { requesterToken } : {}),
    };
    try {
      const h = await this.client.workflow.start('releaseWorkflow', {
        args: [input],
        taskQueue: this.taskQueue,
        workflowId,
        // A failed or aborted release may be started again; a succeeded one may not (CI re-runs attach to it).
        workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY',
        typedSearchAttributes: [
          { key: SA.service, value: input.service },
          { key: SA.version, value: input.version },
          { key: SA.requester, value: requester },
          { key: SA.stage, value: 'queued' },
          { key: SA.awaitingApproval, value: '' },
        ],
      });
      return { workflowId, runId: h.firstExecutionRunId, attached: false };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      const d = await this.handle(workflowId).describe();
      return { workflowId, runId: d.runId, attached: true };
    }
  }

  /**
   * Starts a release signed by an edge's own tokens (the UI's registry webhook, for its configured principal) rather
   * than this client's; a release with this id already there is attached to, as for any start (`attachToEnded`: also
   * one that ended, failed or not).
   */
  async startSigned(req: Omit<StartRequest, 'requesterToken'>, tokens: DecisionTokens, opts: { attachToEnded?: boolean } = {}): Promise<StartResult> {
    const workflowId = releaseWorkflowId(req.service, req.version);
    // A redelivered notification must not start a second run even after a failed one (a person may, with `release start`).
    if (opts.attachToEnded) {
      try {
        const d = await this.handle(workflowId).describe();
        return { workflowId, runId: d.runId, attached: true };
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    }
    const requesterToken = await tokens.token({ sub: req.requester, rel: workflowId, act: 'start', src: startSource(req) });
    return this.start({ ...req, requesterToken });
  }

  /**
   * Wakes a gitops release waiting on a pull request (forge webhook). Only a running release on the trusted queue is
   * told; the Update carries no state (the workflow re-reads the pull request), and `deliveryId` makes a forge's
   * redelivery the same Update. Returns once the workflow accepted it, not when its handler finished.
   */
  async pullRequestChanged(workflowId: string, environment: string, number: number, deliveryId?: string): Promise<PullRequestNotice> {
    try {
      const d = await this.handle(workflowId).describe();
      if (d.taskQueue !== this.taskQueue || d.status.name !== 'RUNNING') return { outcome: 'not-found' };
      await this.handle(workflowId).startUpdate(gitopsPullRequestChangedUpdate, {
        args: [{ environment, number }],
        waitForStage: WorkflowUpdateStage.ACCEPTED,
        ...(deliveryId ? { updateId: `gitops-pr:${environment}:${number}:${deliveryId}`.slice(0, 255) } : {}),
      });
      return { outcome: 'sent' };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { outcome: 'not-found' };
      if (err instanceof WorkflowUpdateFailedError) return { outcome: 'refused', message: (err.cause as any)?.message ?? err.message };
      throw err;
    }
  }

  async status(workflowId: string): Promise<ReleaseStatus> {
    return this.handle(workflowId).query(statusQuery);
  }

  /**
   * Waits until the release reaches `target` — a stage id ("push", "approval:prod"), a stage kind ("build",
   * "approval"), an environment name (its image is there), or "done" — or ends. Polls the status query.
   */
  async waitFor(workflowId: string, target: string, opts: { timeoutMs?: number; intervalMs?: number; onStatus?: (s: ReleaseStatus) => void } = {}): Promise<{ status: ReleaseStatus; reached: boolean }> {
    const deadline = opts.timeoutMs ? Date.now() + opts.timeoutMs : Infinity;
    for (;;) {
      let status: ReleaseStatus;
      try {
        status = await this.status(workflowId);
      } catch (err) {
        // While workers restart, queries fail for a moment ("no poller seen"); a waiting CI job should ride it out.
        if (!isTransient(err) || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      opts.onStatus?.(status);
      const reached = reachedTarget(status, target);
      if (reached || TERMINAL_PHASES.includes(status.phase)) return { status, reached };
      if (Date.now() > deadline) return { status, reached: false };
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 500));
    }
  }

  /**
   * Approves or rejects. With a token source the decision is signed for this release's run, the environment awaiting
   * approval and its digest (or those given); the workflow believes only the token.
   */
  async decide(workflowId: string, decision: 'approve' | 'reject', req: ApprovalRequest, tokens: DecisionTokens | undefined = this.tokens): Promise<ApprovalResponse> {
    let args: ApprovalRequest = req;
    // Without an identity there is nothing to sign: the request goes unsigned and the workflow refuses it.
    if (!req.token && tokens && req.approver) {
      const { runId, status } = await this.bindings(workflowId);
      const env = req.environment ?? status.awaitingApproval?.environment;
      const dig = req.digest ?? status.digest;
      const token = await tokens.token({ sub: req.approver, ...(req.groups ? { groups: req.groups } : {}), rel: workflowId, run: runId, ...(env ? { env } : {}), ...(dig ? { dig } : {}), act: decision, ...(req.comment ? { note: req.comment } : {}) });
      args = { token, ...(req.comment ? { comment: req.comment } : {}), ...(env ? { environment: env } : {}), ...(dig ? { digest: dig } : {}) };
    }
    try {
      return await this.handle(workflowId).executeUpdate(decision === 'approve' ? approveUpdate : rejectUpdate, { args: [args] });
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        const cause: any = err.cause;
        if (cause?.type === ErrorTypes.ApprovalRefused) throw new ApprovalRefusedError(cause.message);
        throw new ApprovalRefusedError(cause?.message ?? err.message);
      }
      throw err;
    }
  }

  /** Steers a running canary (promote now, skip the current step, roll back); refusals carry the workflow's reason. */
  async canary(workflowId: string, req: CanaryActionRequest, tokens: DecisionTokens | undefined = this.tokens): Promise<CanaryStatus> {
    let args = req;
    if (!req.token && tokens) {
      const { runId, status } = await this.bindings(workflowId);
      const c = status.canary;
      const token = await tokens.token({ sub: req.by, rel: workflowId, run: runId, ...(c ? { env: c.environment, step: c.step } : {}), dig: status.digest ?? 'none', act: `canary:${req.action}`, ...(req.reason ? { note: req.reason } : {}) });
      args = { ...req, token };
    }
    try {
      return await this.handle(workflowId).executeUpdate(canaryUpdate, { args: [args] });
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) throw new ApprovalRefusedError((err.cause as any)?.message ?? err.message);
      throw err;
    }
  }

  /**
   * Rolls one environment back to the revision a finished release replaced, through its own workflow (history,
   * lock). A running release is refused: aborting it rolls back what it deployed.
   */
  async rollback(workflowId: string, environment: string, opts: { reason: string; by: string; timeoutMs?: number }): Promise<RollbackResult & { workflowId: string }> {
    const d = await this.handle(workflowId).describe();
    if (d.status.name === 'RUNNING') throw new UsageError(`${workflowId} is still running: abort it instead (an abort rolls back every environment it deployed to)`);
    const status = await this.status(workflowId);
    const dep = status.deployments?.[environment];
    if (!dep) throw new UsageError(`--env: ${workflowId} did not deploy to "${environment}" (it deployed to: ${Object.keys(status.deployments ?? {}).join(', ') || 'nothing'})`);
    const req: RollbackRequest = {
      releaseId: workflowId,
      runId: d.runId,
      service: status.service,
      environment,
      target: { context: dep.context, namespace: dep.namespace },
      toRevision: dep.previousRevision,
      reason: opts.reason,
      by: opts.by,
      timeoutMs: opts.timeoutMs ?? 300_000,
    };
    const id = rollbackWorkflowId(workflowId, environment, new Date().toISOString());
    const result = await this.client.workflow.execute('rollbackWorkflow', { args: [req], taskQueue: this.taskQueue, workflowId: id });
    return { ...(result as RollbackResult), workflowId: id };
  }

  /** Aborts: a signed Update (refused with its reason) — or, for a run from before signed decisions, the signal. */
  async abort(workflowId: string, reason: string, by: string, tokens: DecisionTokens | undefined = this.tokens): Promise<void> {
    // An unsigned abort signal is ignored by every release started with signed decisions: say so instead of sending it.
    if (!tokens) throw new UsageError('abort: this client holds no key to sign the decision (identity.local on the local stack, or SLIPWAY_EDGE_URL for a CI token exchange)');
    const { runId, status } = await this.bindings(workflowId);
    const token = await tokens.token({ sub: by, rel: workflowId, run: runId, dig: status.digest ?? 'none', act: 'abort', note: reason });
    try {
      await this.handle(workflowId).executeUpdate(abortUpdate, { args: [{ reason, by, token }] });
    } catch (err) {
      if (!(err instanceof WorkflowUpdateFailedError)) throw err;
      const message = (err.cause as any)?.message ?? err.message;
      if (/predates signed decisions/.test(message)) return this.handle(workflowId).signal(abortSignal, { reason, by });
      throw new ApprovalRefusedError(message);
    }
  }

  /** The final status, whether the release succeeded or not. */
  async result(workflowId: string): Promise<ReleaseStatus> {
    try {
      return await this.handle(workflowId).result();
    } catch (err) {
      if (err instanceof WorkflowFailedError) {
        const details = (err.cause as any)?.details?.[0];
        if (details?.phase) return details as ReleaseStatus;
      }
      throw err;
    }
  }

  async list(filter: { awaitingApproval?: boolean; service?: string; environment?: string; limit?: number } = {}): Promise<ReleaseSummary[]> {
    // Only releases on the trusted orchestrator queue: anyone may start a look-alike on a queue no trusted worker polls.
    const clauses = ["WorkflowType = 'releaseWorkflow'", `TaskQueue = '${this.taskQueue.replace(/'/g, '')}'`];
    if (filter.service) clauses.push(`SlipwayService = '${filter.service.replace(/'/g, '')}'`);
    if (filter.environment) clauses.push(`SlipwayAwaitingApproval = '${filter.environment.replace(/'/g, '')}' AND ExecutionStatus = 'Running'`);
    else if (filter.awaitingApproval) clauses.push(`SlipwayAwaitingApproval != '' AND ExecutionStatus = 'Running'`);
    const out: ReleaseSummary[] = [];
    for await (const wf of this.client.workflow.list({ query: clauses.join(' AND ') })) {
      const sa = wf.typedSearchAttributes;
      out.push({
        workflowId: wf.workflowId,
        runId: wf.runId,
        status: wf.status.name,
        service: sa.get(SA.service),
        version: sa.get(SA.version),
        stage: sa.get(SA.stage),
        awaitingApproval: sa.get(SA.awaitingApproval) || undefined,
        requester: sa.get(SA.requester),
        digest: sa.get(SA.digest),
        startTime: wf.startTime.toISOString(),
        // Memos are whatever the workflow's starter wrote: only a well-formed entry is shown.
        inbox: parseInboxEntry(wf.memo?.inbox),
      });
      if (out.length >= (filter.limit ?? 100)) break;
    }
    return out;
  }
}

function isTransient(err: unknown): boolean {
  const code = (err as any)?.cause?.code ?? (err as any)?.code;
  // gRPC FAILED_PRECONDITION (no poller), DEADLINE_EXCEEDED (query timed out), UNAVAILABLE (server restarting).
  return code === 9 || code === 4 || code === 14;
}

export function reachedTarget(status: ReleaseStatus, target: string): boolean {
  if (target === 'done') return TERMINAL_PHASES.includes(status.phase);
  if (status.references[target]) return true;
  const matches = status.stages.filter((s) => s.id === target || s.kind === target);
  return matches.some((s) => s.state === 'succeeded' || (s.kind === 'approval' && s.state === 'waiting'));
}
