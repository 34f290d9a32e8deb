/**
 * A canary's analysis: its steps (set a weight, analyse, pause), the judgement of each interval, and the actions
 * operators send it through the `canary` Update. The canary's start, promotion and removal are in deploys.ts.
 */
import { ApplicationFailure, condition, patched, setHandler } from '@temporalio/workflow';
import type { DecisionAction } from '../../model/decision-token';
import { ErrorTypes } from '../../model/errors';
import type { CanaryActionRequest, CanaryMeasurement, CanaryStatus, DecisionIdentity, EnvironmentPlan, ReleaseInput, StartCanaryResult } from '../../model/types';
import { isApprover } from '../approval';
import { judge } from '../canary/judge';
import { canaryUpdate } from '../messages';
import { kubeActs, metricActs } from '../proxies';
import { refused, type Decisions } from './approval-gate';
import { CANARY_INCREMENTAL_PATCH, CANARY_SCOPE_PATCH } from './patches';
import { iso, type Release } from './status';

/** The metrics that kept an interval from passing, for the failure message. */
const describe = (i: { metrics: { name: string; classification: string }[] }) =>
  i.metrics.filter((m) => m.classification !== 'Pass').map((m) => `${m.name} ${m.classification}`).join(', ') || 'all metrics pass';

/**
 * Prometheus evaluates a range query at start + k·step (up to end). Anchored at the analysis start, the next
 * interval's first new point is the first such instant after what was already measured: so the intervals' new points,
 * joined, are exactly the points one query over the whole range returns.
 */
export function nextGridPoint(since: number, measuredTo: number, stepMs: number): number {
  return since + (Math.floor((measuredTo - since) / stepMs) + 1) * stepMs;
}

/**
 * Every metric's points so far, per track, in the workflow's memory: the judge (Mann-Whitney) needs the samples, and
 * each interval's activity result carries only its new points, so the history grows linearly with the intervals.
 * On replay it is rebuilt from those results.
 */
export class CanarySamples {
  private readonly byName = new Map<string, { name: string; baseline: number[]; canary: number[] }>();

  add(metrics: CanaryMeasurement['metrics']): void {
    for (const m of metrics) {
      let s = this.byName.get(m.name);
      if (!s) this.byName.set(m.name, (s = { name: m.name, baseline: [], canary: [] }));
      for (const v of m.baseline) s.baseline.push(v);
      for (const v of m.canary) s.canary.push(v);
    }
  }

  /** The live arrays (no copy per interval): judge them at once, keep nothing that holds them. */
  all(): CanaryMeasurement['metrics'] {
    return [...this.byName.values()];
  }
}

export class CanaryLoop {
  /** The last operator action not yet acted on. */
  private pending: CanaryActionRequest | undefined;

  constructor(
    private readonly input: ReleaseInput,
    private readonly release: Release,
  ) {}

  /** What an operator asked of the running canary; the analysis loop acts on it at its next wake-up. */
  action(req: CanaryActionRequest, identity?: DecisionIdentity): CanaryStatus {
    const c = this.release.status.canary!;
    this.pending = req;
    c.decision = { action: req.action, by: req.by, ...(req.reason ? { reason: req.reason } : {}), at: iso(), ...(identity ? { identity } : {}) };
    return c;
  }

  /**
   * The canary steps: set a weight, analyse (judge cumulative measurements at each interval; a score at or below
   * marginal fails at once, the last must reach pass, an inconclusive one asks a person), or pause.
   */
  async analyse(env: EnvironmentPlan, started: StartCanaryResult): Promise<Record<string, unknown>> {
    const plan = env.canary!;
    const target = (env.deploy ?? env.gitops)!.target;
    const c: CanaryStatus = { environment: env.name, state: 'running', step: 0, weight: 0, intervals: [] };
    this.release.status.canary = c;
    // An action sent to an earlier environment's canary must not steer this one (it would promote with no analysis).
    if (patched(CANARY_SCOPE_PATCH)) this.pending = undefined;
    // Runs from before measure the whole range at every interval (quadratic history); they replay as they were.
    const incremental = patched(CANARY_INCREMENTAL_PATCH);
    const samples = new CanarySamples();
    const stepMs = plan.prometheus.stepSeconds * 1000;
    let measuredTo: number | undefined;
    const { pass, marginal } = plan.judge.thresholds;
    const take = (action: CanaryActionRequest['action']) => this.pending?.action === action && (this.pending.environment === undefined || this.pending.environment === env.name);
    const rolledBack = () => {
      const p = this.pending!;
      return ApplicationFailure.nonRetryable(`canary rolled back by ${p.by}${p.reason ? `: ${p.reason}` : ''}`, ErrorTypes.CanaryFailed, c);
    };
    /** Waits up to `ms` for an operator's action; true when one arrived. */
    const wait = async (ms: number) => condition(() => this.pending !== undefined, ms);
    // Each judgement covers the canary's whole measured life so far (Kayenta's "lifetime" window): more points, more power.
    // The samples are kept here (CanarySamples); each interval fetches only its new points.
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
        // namespace and service name the release for $namespace/$service/$backend (an input field only: replay-safe).
        const measure = (from: number) =>
          metricActs.measureCanary({ prometheusUrl: plan.prometheus.url, queries: plan.queries, namespace: target.namespace, service: this.input.service, start: iso(from), end: iso(next), stepSeconds: plan.prometheus.stepSeconds });
        let data: CanaryMeasurement['metrics'];
        if (incremental) {
          // Only the points since the last interval; an interval shorter than the step may have none to fetch.
          const from = measuredTo === undefined ? since : nextGridPoint(since, measuredTo, stepMs);
          if (from <= next) samples.add((await measure(from)).metrics);
          measuredTo = next;
          data = samples.all();
        } else {
          data = (await measure(since)).metrics;
        }
        const r = judge(plan.judge, data);
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
}

/**
 * Installs the `canary` Update: promote, skip or roll back the running canary. On signed runs the environment's
 * approvers steer it (without an approval policy, only the release's requester), by a token bound to the step.
 */
export function listenForCanaryActions(loop: CanaryLoop, input: ReleaseInput, release: Release, decisions: Decisions): void {
  const status = release.status;
  setHandler(
    canaryUpdate,
    (req) => {
      const { who, claims, identity } = decisions.decider(req.token, req.by);
      const c = status.canary!;
      return loop.action({ ...req, by: who, ...(claims ? { reason: claims.note, environment: c.environment, step: c.step } : {}) }, identity);
    },
    {
      validator: (req) => {
        const c = status.canary;
        if (!c || !['running', 'paused', 'awaiting-decision'].includes(c.state)) throw ApplicationFailure.nonRetryable('no canary analysis is running', ErrorTypes.InvalidInput);
        if (!req || !['promote', 'skip', 'rollback'].includes(req.action)) throw ApplicationFailure.nonRetryable('action must be promote, skip or rollback', ErrorTypes.InvalidInput);
        if (!decisions.trust) {
          if (!req.by) throw ApplicationFailure.nonRetryable('by: who acts must be named', ErrorTypes.InvalidInput);
          return;
        }
        const claims = decisions.verified(req.token, { act: `canary:${req.action}` as DecisionAction, env: c.environment, dig: status.digest ?? 'none', step: c.step });
        const policy = input.environments.find((e) => e.name === c.environment)?.approval;
        // The environment's approvers steer its canary; without an approval policy, only the release's requester.
        const allowed = policy ? isApprover(policy, claims.sub, decisions.vouchedGroups(claims)) : claims.sub === input.requester;
        if (!allowed) throw refused(`${claims.sub} is not an approver for "${c.environment}" and may not steer its canary`);
      },
    },
  );
}
