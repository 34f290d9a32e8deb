/**
 * The release's status: what the `status` query returns, what the workflow returns, and what its failures carry as
 * details. Stage marks, the search attributes and the approvals-inbox memo are kept in step with it here.
 */
import { isCancellation, patched, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import { explainFailure } from '../../model/errors';
import { SA } from '../../model/search-attributes';
import type { DecisionIdentity, EnvironmentPlan, InboxEntry, ReleaseInput, ReleasePhase, ReleaseStatus, ResolvedRelease, StageKind, StageStatus } from '../../model/types';
import { INBOX_MEMO_PATCH } from './patches';

/** Workflow time as ISO-8601 (Date.now() is deterministic inside a workflow). */
export const iso = (ms: number = Date.now()): string => new Date(ms).toISOString();

/** The innermost message of a failure, for people to read; control flow checks failure types, never this text. */
export function messageOf(err: unknown): string {
  let e: any = err;
  // Activity failures wrap the real cause; the innermost message is the useful one.
  while (e?.cause && (e.name === 'ActivityFailure' || e.name === 'ChildWorkflowFailure')) e = e.cause;
  return e?.message ?? String(err);
}

/** What the plan stage found at the start of a signed run (absent on runs from before signed decisions). */
export interface Resolved {
  planned: ResolvedRelease;
  stage: StageStatus;
  requesterIdentity: DecisionIdentity;
}

export class Release {
  readonly status: ReleaseStatus;
  approvalsFor = (env: string) => this.status.approvals.filter((a) => a.environment === env && a.decision === 'approved').length;

  constructor(
    readonly input: ReleaseInput,
    resolved?: Resolved,
  ) {
    const stages: StageStatus[] = resolved ? [resolved.stage] : [];
    const add = (id: string, kind: StageKind, environment?: string) => stages.push({ id, kind, environment, state: 'pending' });
    const first = input.environments[0];
    const deploys = input.environments.some((e) => e.deploy);
    const addDeploy = (env: EnvironmentPlan) => {
      // GitOps: the change (and its pull request, and Flux) is the deploy stage; the smoke checks follow as usual.
      if (env.gitops) {
        // With a canary, the analysis comes first and the Git change is its promotion.
        if (env.canary) add(`canary:${env.name}`, 'canary', env.name);
        add(`deploy:${env.name}`, 'deploy', env.name);
        if (env.gitops.smoke.length) add(`smoke:${env.name}`, 'smoke', env.name);
        return;
      }
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
