/**
 * The scan gate's judgement, as a pure function: findings + policy + "now" → verdict. The workflow runs it (with
 * workflow time, so allowlist expiry is deterministic), and so does `slipway scan evaluate`.
 */
import { SEVERITIES, type Severity } from './identifiers';

export interface Finding {
  id: string;
  pkg: string;
  installed: string;
  fixed?: string;
  severity: Severity;
  target?: string;
  title?: string;
}

export interface ScanReport {
  scanner: string;
  scannerVersion?: string;
  image: string;
  scannedAt: string;
  /** What was scanned, as the scanner saw it: the image config digest, and the manifest digest when known. */
  imageId?: string;
  digest?: string;
  counts: Record<Severity, number>;
  findings: Finding[];
}

export interface Allowance {
  id: string;
  reason: string;
  /** YYYY-MM-DD; the entry stops counting at the start of that day (UTC). */
  expires: string;
}

export interface ScanPolicy {
  failOn: Severity;
  onlyFixed: boolean;
  allow: Allowance[];
  /** Before promotion into this environment, a scan older than this is repeated. */
  rescanAfterMs?: number;
}

export interface Violation extends Finding {
  rule: string;
}

export interface Verdict {
  pass: boolean;
  failOn: Severity;
  counts: Record<Severity, number>;
  violations: Violation[];
  /** Findings at or above the threshold that an unexpired allowlist entry let through. */
  allowed: (Finding & { reason: string; expires: string })[];
  /** Allowlist entries past their expiry that matched a finding: they no longer count. */
  expired: { id: string; expires: string }[];
  ignoredUnfixed: number;
}

const rank = (s: Severity) => SEVERITIES.indexOf(s);
export const normaliseSeverity = (s: string): Severity => ((SEVERITIES as readonly string[]).includes(s.toUpperCase()) ? (s.toUpperCase() as Severity) : 'UNKNOWN');

export function countBySeverity(findings: Finding[]): Record<Severity, number> {
  const counts = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<Severity, number>;
  for (const f of findings) counts[f.severity]++;
  return counts;
}

export function evaluate(report: ScanReport, policy: ScanPolicy, now: number): Verdict {
  const verdict: Verdict = { pass: true, failOn: policy.failOn, counts: countBySeverity(report.findings), violations: [], allowed: [], expired: [], ignoredUnfixed: 0 };
  for (const f of report.findings) {
    if (rank(f.severity) < rank(policy.failOn)) continue;
    if (policy.onlyFixed && !f.fixed) {
      verdict.ignoredUnfixed++;
      continue;
    }
    const allowance = policy.allow.find((a) => a.id === f.id);
    if (allowance && Date.parse(`${allowance.expires}T00:00:00Z`) > now) {
      verdict.allowed.push({ ...f, reason: allowance.reason, expires: allowance.expires });
      continue;
    }
    if (allowance) verdict.expired.push({ id: allowance.id, expires: allowance.expires });
    const rule = allowance
      ? `severity ${f.severity} ≥ ${policy.failOn}; its allowlist entry expired on ${allowance.expires}`
      : `severity ${f.severity} ≥ ${policy.failOn}${policy.onlyFixed ? ' with a fix available' : ''}`;
    verdict.violations.push({ ...f, rule });
  }
  verdict.pass = verdict.violations.length === 0;
  return verdict;
}

export function describeViolations(v: Verdict): string {
  return v.violations
    .map((f) => `${f.id} in ${f.pkg} ${f.installed}${f.fixed ? ` (fixed in ${f.fixed})` : ' (no fix)'} [${f.severity}]: ${f.rule}`)
    .join('\n');
}
