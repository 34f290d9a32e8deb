/**
 * The scan gate with a real Trivy (built from the Go module proxy) scanning images built here by the real Docker
 * engine, against a fixture database written by trivy-db's own code (test/fixtures/trivy/advisories.json): the
 * advisories match package metadata really present in the images, so every finding is a real match.
 */
import { createServer, type Server } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { createScanActivities } from '../../activities';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { OciRegistryClient, RegistryHttpError } from '../../activities/registry/oci-client';
import { TrivyScanner, trivyOptionsFromEnv, ScannerError } from '../../activities/scanner/trivy';
import type { SlipwayClient } from '../../client/client';
import { realActivities } from '../real-activities';
import { plan, sampleConfigText, startHarness, type Harness } from '../helpers';
import { testStack } from '../setup/stack-info';

const NS = 'slipway-it';
const stack = testStack();
const env = {
  SLIPWAY_REGISTRY_DEV_USERNAME: stack.registry.username,
  SLIPWAY_REGISTRY_DEV_PASSWORD: stack.registry.password,
  SLIPWAY_REGISTRY_OTHER_USERNAME: stack.registry.username,
  SLIPWAY_REGISTRY_OTHER_PASSWORD: stack.registry.password,
};
const credentials = new EnvCredentialStore(env, '/nonexistent');
const registry = new OciRegistryClient({ host: stack.registry.url, name: 'dev' }, credentials);

let harness: Harness;
let slipway: SlipwayClient;

beforeAll(async () => {
  harness = await startHarness(NS, realActivities(credentials, 'scan-host'), 'scan-host');
  slipway = harness.slipway;
});
afterAll(() => harness.stop());

const release = (service: string, scans: { qaScan?: string; prodScan?: string }) => plan({ service, config: sampleConfigText(scans) });
const stage = (s: { stages: { id: string; state: string; result?: any; error?: string }[] }, id: string) => s.stages.find((x) => x.id === id)!;
const tagExists = (repo: string, tag: string) =>
  registry.getManifest(repo, tag).then(
    () => true,
    (err) => (err instanceof RegistryHttpError && err.status === 404 ? false : Promise.reject(err)),
  );

async function approveAndFinish(id: string) {
  const { status, reached } = await slipway.waitFor(id, 'approval', { timeoutMs: 120_000 });
  if (!reached) return status;
  await slipway.decide(id, 'approve', { approver: 'alice' });
  return slipway.result(id);
}

test('a vulnerable image is stopped before the push, with every offending finding listed', async () => {
  const input = release('vulnerable', { qaScan: '{ failOn: high }' });
  const { workflowId } = await slipway.start(input);
  const result = await slipway.result(workflowId);
  expect(result.phase).toBe('failed');
  expect(result.error).toMatch(/scan policy for qa violated by 2 finding\(s\)/);
  expect(result.error).toMatch(/CVE-2020-8203 in lodash 4\.17\.15 \(fixed in 4\.17\.19\) \[HIGH\]: severity HIGH ≥ HIGH/);
  expect(result.error).toMatch(/CVE-2021-23337 in lodash 4\.17\.15 \(fixed in 4\.17\.21\) \[HIGH\]/);
  const scan = stage(result, 'scan');
  expect(scan.state).toBe('failed');
  expect(scan.result).toMatchObject({ verdict: 'fail', scanner: 'trivy', counts: { CRITICAL: 0, HIGH: 2, MEDIUM: 1, LOW: 0 } });
  expect(scan.result.violations.map((v: any) => v.id).sort()).toEqual(['CVE-2020-8203', 'CVE-2021-23337']);
  expect(stage(result, 'push').state).toBe('skipped');
  expect(await tagExists('vulnerable', input.version)).toBe(false);

  const history = await slipway.handle(workflowId).fetchHistory();
  const failure = JSON.stringify((history as any).toJSON());
  expect(failure).toContain('ScanPolicyViolationError');
}, 180_000);

test('a clean image passes both gates and is promoted', async () => {
  const input = release('clean', { qaScan: '{ failOn: low }', prodScan: '{ failOn: low }' });
  const { workflowId } = await slipway.start(input);
  const result = await approveAndFinish(workflowId);
  expect(result.phase).toBe('succeeded');
  expect(stage(result, 'scan').result).toMatchObject({ verdict: 'pass', counts: { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0 } });
  expect(stage(result, 'scan:prod').result).toMatchObject({ verdict: 'pass', rescanned: false });
  // What was scanned is what was built.
  expect(stage(result, 'scan').result.imageId).toBe(stage(result, 'build').result.imageId);
  expect(await tagExists('prod/clean', input.version)).toBe(true);
}, 180_000);

test('an allowlisted CVE passes until its expiry date and fails after it; the status says which', async () => {
  const allow = (expires: string) => `{ failOn: high, allow: [{ id: CVE-2021-23337, reason: "template() not used; upgrade tracked in DEL-42", expires: ${expires} }] }`;
  const ok = await slipway.start(release('allowlisted', { qaScan: allow('2099-01-01') }));
  const passed = await slipway.waitFor(ok.workflowId, 'approval', { timeoutMs: 120_000 });
  expect(passed.reached).toBe(true);
  expect(stage(passed.status, 'scan').result).toMatchObject({ verdict: 'pass', allowed: [{ id: 'CVE-2021-23337', pkg: 'lodash', expires: '2099-01-01' }], counts: { HIGH: 1, MEDIUM: 1 } });
  await slipway.abort(ok.workflowId, 'done with this one', 'alice');

  const expired = await slipway.start(release('allowlisted', { qaScan: allow('2020-01-01') }));
  const result = await slipway.result(expired.workflowId);
  expect(result.phase).toBe('failed');
  expect(stage(result, 'scan').result).toMatchObject({ verdict: 'fail', expiredAllowances: [{ id: 'CVE-2021-23337', expires: '2020-01-01' }] });
  expect(result.error).toMatch(/CVE-2021-23337 .*its allowlist entry expired on 2020-01-01/);
}, 180_000);

test('onlyFixed ignores findings without a fix, and says how many', async () => {
  const { workflowId } = await slipway.start(release('nofix', { qaScan: '{ failOn: critical, onlyFixed: true }' }));
  const passed = await slipway.waitFor(workflowId, 'approval', { timeoutMs: 120_000 });
  expect(stage(passed.status, 'scan').result).toMatchObject({ verdict: 'pass', ignoredUnfixed: 1, counts: { CRITICAL: 1 } });
  await slipway.abort(workflowId, 'done', 'alice');
  const strict = await slipway.start(release('nofix', { qaScan: '{ failOn: critical }' }));
  const failed = await slipway.result(strict.workflowId);
  expect(failed.error).toMatch(/GHSA-slip-test-nofx in event-stream 3\.3\.6 \(no fix\) \[CRITICAL\]/);
}, 180_000);

test('production can be stricter than QA: the QA push happens, the promotion does not', async () => {
  const input = release('allowlisted', { qaScan: '{ failOn: critical }', prodScan: '{ failOn: medium }' });
  const { workflowId } = await slipway.start(input);
  const result = await approveAndFinish(workflowId);
  expect(result.phase).toBe('failed');
  expect(stage(result, 'scan').result).toMatchObject({ verdict: 'pass' });
  expect(stage(result, 'scan:prod').result).toMatchObject({ verdict: 'fail', failOn: 'MEDIUM' });
  expect(stage(result, 'promote:prod').state).toBe('skipped');
  expect(await tagExists('allowlisted', input.version)).toBe(true);
  expect(await tagExists('prod/allowlisted', input.version)).toBe(false);
}, 180_000);

test('a scan older than the production policy allows is repeated, on the registry copy, before promotion', async () => {
  const input = release('clean', { qaScan: '{ failOn: high }', prodScan: '{ failOn: high, rescanAfter: 1s }' });
  const { workflowId } = await slipway.start(input);
  await slipway.waitFor(workflowId, 'approval', { timeoutMs: 120_000 });
  await new Promise((r) => setTimeout(r, 1500));
  const result = await approveAndFinish(workflowId);
  expect(result.phase).toBe('succeeded');
  const qa = stage(result, 'scan').result;
  const prod = stage(result, 'scan:prod').result;
  expect(prod).toMatchObject({ rescanned: true, verdict: 'pass', image: `${stack.registry.url}/clean@${result.digest}`, digest: result.digest });
  expect(Date.parse(prod.scannedAt)).toBeGreaterThan(Date.parse(qa.scannedAt) + 1000);
}, 180_000);

test('a release from an existing image is scanned in its registry, then exactly that digest is imported', async () => {
  const built = await slipway.start(release('clean', { qaScan: '{ failOn: high }' }));
  const first = await slipway.waitFor(built.workflowId, 'approval', { timeoutMs: 120_000 });
  await slipway.abort(built.workflowId, 'only needed its image', 'alice');
  const source = first.status.references.qa;
  const input = plan({ service: 'clean', image: source.replace(/@.*/, `:${first.status.version}`), config: sampleConfigText({ qaScan: '{ failOn: high }' }) });
  const { workflowId } = await slipway.start(input);
  const { status } = await slipway.waitFor(workflowId, 'approval', { timeoutMs: 120_000 });
  expect(status.stages.map((s) => s.id)).toEqual(['plan', 'scan', 'import', 'approval:prod', 'promote:prod']);
  expect(status.error).toBeUndefined();
  expect(stage(status, 'scan').result).toMatchObject({ verdict: 'pass', digest: first.status.digest });
  expect(status.digest).toBe(first.status.digest);
  await slipway.abort(workflowId, 'done', 'alice');
}, 180_000);

describe('a broken scanner never passes the gate', () => {
  const image = (service: string) => `127.0.0.1:5000/${service}:never-built`;
  const scan = (opts: Partial<ConstructorParameters<typeof TrivyScanner>[0]>, ref = image('x'), source: 'docker' | 'registry' = 'registry') =>
    createScanActivities({ scanner: new TrivyScanner({ ...trivyOptionsFromEnv({ ...process.env, DOCKER_HOST: stack.docker }), cacheDir: stack.trivyCache, timeoutMs: 60_000, ...opts }, credentials) }).scanImage({
      image: ref,
      source,
    });

  test('missing trivy binary', async () => {
    await expect(scan({ binary: '/nonexistent/trivy' })).rejects.toMatchObject({ type: 'ScannerUnavailableError', nonRetryable: true, message: expect.stringMatching(/trivy not found/) });
  });

  test('missing vulnerability database', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'slipway-trivy-empty-'));
    const err = await scan({ cacheDir: empty }).catch((e) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err.type).toBe('ScannerDatabaseError');
    expect(err.nonRetryable).toBe(true);
  }, 60_000);

  test('scanner timeout (a registry that never answers)', async () => {
    const server: Server = createServer(() => undefined);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const err = await scan({ timeoutMs: 2000 }, `127.0.0.1:${port}/hangs:v1`).catch((e) => e);
      expect(err.type).toBe('ScannerTimeoutError');
      expect(err.nonRetryable).toBe(true);
    } finally {
      server.close();
    }
  }, 90_000);

  test('an image that does not exist is a failed scan, not a clean one', async () => {
    const err = await scan({}, image('nothing-here')).catch((e) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err.type).toBe('ScannerFailedError');
  }, 60_000);

  test('ScannerError types are the ones the activity maps', () => {
    expect(new ScannerError('x', 'ScanReportInvalidError').name).toBe('ScanReportInvalidError');
  });
});
