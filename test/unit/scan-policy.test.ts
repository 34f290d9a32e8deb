/** The scan policy and Trivy report parsing, on reports Trivy produced here (test/fixtures/trivy/reports/). */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseTrivyReport } from '../../activities/scanner/trivy';
import { parseConfig } from '../../model/plan';
import { countBySeverity, evaluate, type Finding, type ScanPolicy } from '../../model/scan-policy';
import { SEVERITIES } from '../../model/identifiers';
import { sampleConfigText } from '../helpers';

const REPORTS = join(__dirname, '..', 'fixtures', 'trivy', 'reports');
const report = (name: string) => parseTrivyReport(readFileSync(join(REPORTS, `${name}.json`), 'utf8'), name, '2026-11-23T00:00:00Z');
const policy = (p: Partial<ScanPolicy> = {}): ScanPolicy => ({ failOn: 'HIGH', onlyFixed: false, allow: [], ...p });
const NOW = Date.parse('2026-11-23T12:00:00Z');

test('real reports parse into findings with package, versions and severity', () => {
  const r = report('vulnerable');
  expect(r.counts).toMatchObject({ HIGH: 2, MEDIUM: 1, CRITICAL: 0 });
  expect(r.findings).toEqual(
    expect.arrayContaining([expect.objectContaining({ id: 'CVE-2020-8203', pkg: 'lodash', installed: '4.17.15', fixed: '4.17.19', severity: 'HIGH' })]),
  );
  expect(report('clean').findings).toEqual([]);
  expect(readdirSync(REPORTS).length).toBeGreaterThanOrEqual(3);
});

test('threshold, allowlist (with expiry) and onlyFixed', () => {
  expect(evaluate(report('vulnerable'), policy(), NOW)).toMatchObject({ pass: false, violations: [expect.anything(), expect.anything()] });
  expect(evaluate(report('vulnerable'), policy({ failOn: 'CRITICAL' }), NOW).pass).toBe(true);
  const v = evaluate(report('vulnerable'), policy({ failOn: 'MEDIUM' }), NOW);
  expect(v.violations.map((x) => x.id).sort()).toEqual(['CVE-2020-28500', 'CVE-2020-8203', 'CVE-2021-23337']);

  const allow = [{ id: 'CVE-2021-23337', reason: 'not reachable', expires: '2026-11-24' }];
  const before = evaluate(report('allowlisted'), policy({ allow }), NOW);
  expect(before).toMatchObject({ pass: true, allowed: [expect.objectContaining({ id: 'CVE-2021-23337', reason: 'not reachable' })], expired: [] });
  const after = evaluate(report('allowlisted'), policy({ allow }), Date.parse('2026-11-24T00:00:00Z'));
  expect(after).toMatchObject({ pass: false, expired: [{ id: 'CVE-2021-23337', expires: '2026-11-24' }] });
  expect(after.violations[0].rule).toMatch(/expired on 2026-11-24/);

  expect(evaluate(report('nofix'), policy({ failOn: 'CRITICAL' }), NOW).pass).toBe(false);
  expect(evaluate(report('nofix'), policy({ failOn: 'CRITICAL', onlyFixed: true }), NOW)).toMatchObject({ pass: true, ignoredUnfixed: 1 });
});

test.each([
  ['not JSON', '{', /not JSON/],
  ['schema 1', '{"SchemaVersion": 1, "Results": []}', /unsupported Trivy report schema 1/],
  ['no schema', '{"Results": []}', /unsupported Trivy report schema undefined/],
  ['Results not a list', '{"SchemaVersion": 2, "Results": {}}', /Results field that is not a list/],
  ['vulnerability without id', '{"SchemaVersion": 2, "Results": [{"Target": "x", "Vulnerabilities": [{"PkgName": "a"}]}]}', /without VulnerabilityID/],
])('a malformed report (%s) is an error, never a clean scan', (_n, text, message) => {
  expect(() => parseTrivyReport(text, 'x', 'now')).toThrow(message);
});

test('scan policies in slipway.yaml are validated with the path of the bad field', () => {
  const bad = (qaScan: string, message: RegExp) => expect(() => parseConfig(sampleConfigText({ qaScan }))).toThrow(message);
  bad('{ failOn: severe }', /environments\.qa\.scan\.failOn: must be one of unknown, low, medium, high, critical/);
  bad('{ allow: [{ id: CVE-2024-1, reason: ok, expires: 2026-13-45 }] }', /environments\.qa\.scan\.allow\.0\.expires: must be a real date/);
  // Date.parse reads these as 1 March and 1 May: an allowlist entry would quietly last a day or two longer.
  bad('{ allow: [{ id: CVE-2024-1, reason: ok, expires: 2027-02-30 }] }', /environments\.qa\.scan\.allow\.0\.expires: must be a real date/);
  bad('{ allow: [{ id: CVE-2024-1, reason: ok, expires: 2027-04-31 }] }', /environments\.qa\.scan\.allow\.0\.expires: must be a real date/);
  bad('{ allow: [{ id: "CVE-1; rm", reason: ok, expires: 2026-12-01 }] }', /environments\.qa\.scan\.allow\.0\.id: must be a vulnerability id/);
  bad('{ allow: [{ id: CVE-2024-1, reason: "", expires: 2026-12-01 }] }', /environments\.qa\.scan\.allow\.0\.reason: must say why/);
  bad('{ rescanAfter: often }', /environments\.qa\.scan\.rescanAfter: must be a duration/);
  bad('{ failOn: high, extra: 1 }', /environments\.qa\.scan/);
});

test('property: raising the threshold never adds violations; an allowlist never adds violations', () => {
  const finding = fc.record({
    id: fc.constantFrom('CVE-1', 'CVE-2', 'CVE-3', 'CVE-4'),
    pkg: fc.constant('p'),
    installed: fc.constant('1'),
    fixed: fc.option(fc.constant('2'), { nil: undefined }),
    severity: fc.constantFrom(...SEVERITIES),
  }) as fc.Arbitrary<Finding>;
  fc.assert(
    fc.property(fc.array(finding, { maxLength: 12 }), fc.constantFrom(...SEVERITIES), fc.constantFrom(...SEVERITIES), fc.boolean(), (findings, a, b, onlyFixed) => {
      const r = { scanner: 't', image: 'i', scannedAt: 'x', counts: countBySeverity(findings), findings };
      const [low, high] = SEVERITIES.indexOf(a) <= SEVERITIES.indexOf(b) ? [a, b] : [b, a];
      const loose = evaluate(r, policy({ failOn: high, onlyFixed }), NOW).violations.length;
      const strict = evaluate(r, policy({ failOn: low, onlyFixed }), NOW).violations.length;
      expect(loose).toBeLessThanOrEqual(strict);
      const allowed = evaluate(r, policy({ failOn: low, onlyFixed, allow: [{ id: 'CVE-1', reason: 'r', expires: '2099-01-01' }] }), NOW).violations.length;
      expect(allowed).toBeLessThanOrEqual(strict);
    }),
  );
});
