/** `slipway scan evaluate`: the scan gate's judgement on a saved report, for CI and for debugging a policy. */
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ScannerError, parseTrivyReport } from '../activities/scanner/trivy';
import { formatIssues, scanPlanOf, scanPolicySchema } from '../model/config';
import { describeViolations, evaluate, type ScanPolicy, type Verdict } from '../model/scan-policy';
import { loadConfig } from '../host/config';
import { UsageError } from '../model/errors';

export function loadPolicy(policy: string, configFile: string): ScanPolicy {
  let raw: unknown;
  if (existsSync(policy)) {
    try {
      raw = parseYaml(readFileSync(policy, 'utf8'));
    } catch (err) {
      throw new UsageError(`${policy}: ${(err as Error).message}`);
    }
  } else {
    const cfg = loadConfig(configFile);
    if (!cfg.environments[policy]) throw new UsageError(`--policy: "${policy}" is neither a file nor an environment of ${configFile} (${Object.keys(cfg.environments).join(', ')})`);
    raw = cfg.environments[policy].scan;
    if (!raw) throw new UsageError(`--policy: environment "${policy}" has no scan policy in ${configFile}`);
  }
  const r = scanPolicySchema.safeParse(raw);
  if (!r.success) throw new UsageError(`invalid scan policy:\n${formatIssues(r.error, 'policy')}`);
  return scanPlanOf(r.data);
}

export function evaluateReportFile(opts: { report: string; policy: string; configFile: string; now?: string }): { verdict: Verdict; text: string } {
  let text: string;
  try {
    text = readFileSync(opts.report, 'utf8');
  } catch (err) {
    throw new UsageError(`--report: cannot read ${opts.report}: ${(err as Error).message}`);
  }
  const now = opts.now ? Date.parse(opts.now) : Date.now();
  if (Number.isNaN(now)) throw new UsageError('--now: must be a date such as 2026-11-23');
  let report;
  try {
    report = parseTrivyReport(text, opts.report, new Date(now).toISOString());
  } catch (err) {
    if (err instanceof ScannerError) throw new UsageError(`--report: ${err.message}`);
    throw err;
  }
  const verdict = evaluate(report, loadPolicy(opts.policy, opts.configFile), now);
  const c = verdict.counts;
  const lines = [
    `${verdict.pass ? 'PASS' : 'FAIL'} at threshold ${verdict.failOn}: ${c.CRITICAL} critical, ${c.HIGH} high, ${c.MEDIUM} medium, ${c.LOW} low, ${c.UNKNOWN} unknown`,
    ...(verdict.violations.length ? [describeViolations(verdict)] : []),
    ...verdict.allowed.map((a) => `allowed ${a.id} in ${a.pkg} until ${a.expires}: ${a.reason}`),
    ...verdict.expired.map((e) => `allowlist entry ${e.id} expired on ${e.expires} and no longer counts`),
    ...(verdict.ignoredUnfixed ? [`${verdict.ignoredUnfixed} finding(s) without a fix ignored (onlyFixed)`] : []),
  ];
  return { verdict, text: lines.join('\n') };
}
