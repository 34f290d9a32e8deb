/**
 * Nothing retries forever (issue 10, item 6): every activity proxy the workflows create is bounded in time
 * (scheduleToCloseTimeout) and in attempts, and the error vocabulary decides what is retried at all.
 * The proxies are found by recording every `proxyActivities` call made while each workflow module loads, plus the
 * option factories of workflows/proxies.ts called with sample arguments, so a new unbounded proxy fails here.
 */
import { msToNumber } from '@temporalio/common/lib/time';
import { ApplicationFailure } from '@temporalio/common';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const recorded: { file: string; options: any }[] = [];
let loading = '';
jest.mock('@temporalio/workflow', () => {
  const actual = jest.requireActual('@temporalio/workflow');
  return {
    ...actual,
    proxyActivities: (options: any) => {
      recorded.push({ file: loading, options });
      return actual.proxyActivities(options);
    },
  };
});

const WORKFLOWS = join(__dirname, '..', '..', 'workflows');
const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? files(join(dir, d.name)) : d.name.endsWith('.ts') && !d.name.endsWith('.d.ts') ? [join(dir, d.name)] : []));

/** The longest a step may take, retries included, by its options (the test's idea of "bounded"). */
function bounds(o: any): { scheduleToCloseMs: number; attempts: number } {
  return { scheduleToCloseMs: o.scheduleToCloseTimeout === undefined ? Infinity : msToNumber(o.scheduleToCloseTimeout), attempts: o.retry?.maximumAttempts || Infinity };
}

describe('activity proxies', () => {
  beforeAll(() => {
    jest.isolateModules(() => {
      for (const f of files(WORKFLOWS)) {
        loading = f.slice(WORKFLOWS.length + 1);
        require(f);
      }
    });
  });

  test('loading the workflow modules creates proxies (the recorder works)', () => {
    expect(recorded.length).toBeGreaterThanOrEqual(5);
  });

  test('every proxy created when a workflow module loads has a bounded scheduleToCloseTimeout and maximumAttempts', () => {
    const unbounded = recorded.filter((r) => !Number.isFinite(bounds(r.options).scheduleToCloseMs) || !Number.isFinite(bounds(r.options).attempts));
    expect(unbounded.map((r) => `${r.file}: ${JSON.stringify(r.options)}`)).toEqual([]);
  });

  test('every exported option set and option factory of proxies.ts is bounded and fits its stage', () => {
    const { activityOptions } = require('../../workflows/proxies');
    const sample = (k: string) => (k === 'deploy' ? 300_000 : k === 'lock' ? 600_000 : 'slipway-build@host-1');
    const sets = Object.entries(activityOptions).map(([k, v]) => [k, typeof v === 'function' ? (v as (a: unknown) => unknown)(sample(k)) : v] as [string, any]);
    expect(sets.length).toBeGreaterThanOrEqual(9);
    for (const [name, o] of sets) {
      const b = bounds(o);
      expect({ name, bounded: Number.isFinite(b.scheduleToCloseMs) && Number.isFinite(b.attempts) }).toEqual({ name, bounded: true });
      // A budget no longer than all attempts at their longest plus backoff: the bound is real, not decorative.
      if (o.startToCloseTimeout !== undefined) expect(b.scheduleToCloseMs).toBeLessThanOrEqual(b.attempts * msToNumber(o.startToCloseTimeout) + msToNumber(o.scheduleToStartTimeout ?? 0) + 60 * 60_000);
      expect(b.scheduleToCloseMs).toBeLessThanOrEqual(4 * 3600_000);
      expect(o.retry.nonRetryableErrorTypes).toEqual(expect.arrayContaining(['RegistryAuthError', 'TagExistsError', 'DigestMismatchError', 'ImageNotFoundError']));
    }
    // Helm's own timeout is a parameter: the deploy budget grows with it.
    expect(msToNumber(activityOptions.deploy(1_800_000).scheduleToCloseTimeout)).toBeGreaterThan(3 * 1_800_000);
    expect(msToNumber(activityOptions.lock(3_600_000).scheduleToCloseTimeout)).toBeGreaterThan(3_600_000);
  });

  test('boundedProxy refuses an option set without scheduleToCloseTimeout or maximumAttempts', () => {
    const { boundedProxy, retry } = require('../../workflows/proxies');
    expect(() => boundedProxy({ startToCloseTimeout: '1m', retry: { ...retry, maximumAttempts: 3 } })).toThrow(/scheduleToCloseTimeout is not set/);
    expect(() => boundedProxy({ startToCloseTimeout: '1m', scheduleToCloseTimeout: '5m', retry })).toThrow(/maximumAttempts/);
    expect(() => boundedProxy({ startToCloseTimeout: '1m', scheduleToCloseTimeout: '5m', retry: { ...retry, maximumAttempts: 0 } })).toThrow(/maximumAttempts/);
    expect(() => boundedProxy({ startToCloseTimeout: '1m', scheduleToCloseTimeout: '5m', retry: { ...retry, maximumAttempts: 2 } })).not.toThrow();
  });
});

describe('the error vocabulary', () => {
  const errors = require('../../model/errors');
  const { portError, classifyHttp, classifyRegistryMessage } = require('../../activities/errors');

  test('type strings recorded in histories are unchanged', () => {
    // These names are in recorded histories and in clients' error handling: renaming one is a breaking change.
    expect(errors.ErrorTypes).toMatchObject({
      InvalidInput: 'InvalidInputError',
      BuildFailed: 'BuildFailedError',
      ImageNotFound: 'ImageNotFoundError',
      DigestMismatch: 'DigestMismatchError',
      RegistryAuth: 'RegistryAuthError',
      ApprovalRejected: 'ApprovalRejectedError',
      ApprovalExpired: 'ApprovalExpiredError',
      ReleaseAborted: 'ReleaseAbortedError',
      StageFailed: 'StageFailedError',
      ApprovalRefused: 'ApprovalRefusedError',
      ScanPolicyViolation: 'ScanPolicyViolationError',
      RolloutFailed: 'RolloutFailedError',
      DeployFailed: 'DeployFailedError',
      SmokeTestFailed: 'SmokeTestFailedError',
      EnvironmentBusy: 'EnvironmentBusyError',
      ClusterConfig: 'ClusterConfigError',
      MetricQuery: 'MetricQueryError',
      CanaryFailed: 'CanaryFailedError',
      // Raised by adapters (and so in histories) before the catalogue listed them.
      MetricsUnavailable: 'MetricsUnavailableError',
      TagExists: 'TagExistsError',
      RegistryUnavailable: 'RegistryUnavailableError',
      RegistryRejected: 'RegistryRejectedError',
      Timeout: 'TimeoutError',
      ClusterUnreachable: 'ClusterUnreachableError',
      Helm: 'HelmError',
      HelmBusy: 'HelmBusyError',
      ScannerUnavailable: 'ScannerUnavailableError',
      ScannerDatabase: 'ScannerDatabaseError',
      ScannerTimeout: 'ScannerTimeoutError',
      ScanReportInvalid: 'ScanReportInvalidError',
      ScannerFailed: 'ScannerFailedError',
    });
  });

  test('each type is named once, and the non-retryable list is exactly the table’s non-retryable rows', () => {
    const types = Object.values(errors.ERROR_CATALOGUE).map((s: any) => s.type);
    expect(new Set(types).size).toBe(types.length);
    const expected = Object.values(errors.ERROR_CATALOGUE).filter((s: any) => !s.retryable).map((s: any) => s.type);
    expect([...errors.NON_RETRYABLE_ACTIVITY_ERRORS].sort()).toEqual([...expected].sort());
    expect(errors.NON_RETRYABLE_ACTIVITY_ERRORS).not.toContain('RegistryUnavailableError');
  });

  test('portError takes the retryable flag from the table', () => {
    expect(portError('TagExistsError', 'x')).toMatchObject({ type: 'TagExistsError', nonRetryable: true });
    expect(portError('RegistryAuthError', 'x')).toMatchObject({ nonRetryable: true });
    expect(portError('RegistryUnavailableError', 'x')).toMatchObject({ nonRetryable: false });
    expect(portError('DigestMismatchError', 'x', { tag: 't' }).details).toEqual([{ tag: 't' }]);
  });

  test.each([
    [401, 'RegistryAuthError'],
    [403, 'RegistryAuthError'],
    [404, 'ImageNotFoundError'],
    [400, 'RegistryRejectedError'],
    [409, 'RegistryRejectedError'],
    [408, 'RegistryUnavailableError'],
    [429, 'RegistryUnavailableError'],
    [500, 'RegistryUnavailableError'],
    [503, 'RegistryUnavailableError'],
  ])('HTTP %i from a registry is %s', (status, type) => {
    expect(classifyHttp(status)).toBe(type);
  });

  test.each([
    ['unauthorized: authentication required', 'RegistryAuthError'],
    ['denied: requested access to the resource is denied', 'RegistryAuthError'],
    ['name unknown: repository name not known to registry', 'ImageNotFoundError'],
    ['Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused', 'RegistryUnavailableError'],
    ['received unexpected HTTP status: 502 Bad Gateway', 'RegistryUnavailableError'],
  ])('a Docker push failing with "%s" is %s', (message, type) => {
    expect(classifyRegistryMessage(message)).toBe(type);
  });
});

describe('explainFailure: what the workflow reports when a step runs out', () => {
  const { explainFailure } = require('../../model/errors');
  const { ActivityFailure, TimeoutFailure, RetryState, TimeoutType } = require('@temporalio/common');

  test('a retryable failure whose attempts ran out keeps its type and says so', () => {
    const last = ApplicationFailure.retryable('registry 127.0.0.1:5999: ECONNREFUSED', 'RegistryUnavailableError');
    const err = new ActivityFailure('Activity task failed', 'copyImage', '7', RetryState.MAXIMUM_ATTEMPTS_REACHED, 'id', last);
    expect(explainFailure(err)).toEqual({ type: 'RegistryUnavailableError', message: 'copyImage: gave up after its last attempt: registry 127.0.0.1:5999: ECONNREFUSED' });
  });

  test('a schedule-to-close timeout carries the last attempt’s type when there was one, else TimeoutError', () => {
    const last = ApplicationFailure.retryable('503 from the registry', 'RegistryUnavailableError');
    // The server puts the last attempt's failure under the TimeoutFailure (the converter sets `cause`).
    const timeout = Object.assign(new TimeoutFailure('activity ScheduleToClose timeout', undefined, TimeoutType.SCHEDULE_TO_CLOSE), { cause: last });
    const withLast = new ActivityFailure('Activity task timed out', 'copyImage', '7', RetryState.TIMEOUT, 'id', timeout);
    expect(explainFailure(withLast)).toEqual({ type: 'RegistryUnavailableError', message: 'copyImage: gave up after the schedule-to-close timeout (last error: 503 from the registry)' });
    const bare = new ActivityFailure('Activity task timed out', 'deployChart', '9', RetryState.TIMEOUT, 'id', new TimeoutFailure('activity StartToClose timeout', undefined, TimeoutType.START_TO_CLOSE));
    expect(explainFailure(bare)).toEqual({ type: 'TimeoutError', message: 'deployChart: gave up after the start-to-close timeout' });
  });

  test('a non-retryable failure passes through with its own type and message', () => {
    const err = new ActivityFailure('Activity task failed', 'copyImage', '7', RetryState.NON_RETRYABLE_FAILURE, 'id', ApplicationFailure.nonRetryable('tag exists', 'TagExistsError'));
    expect(explainFailure(err)).toEqual({ type: 'TagExistsError', message: 'tag exists' });
  });
});

/**
 * Every failure an activity raises is a catalogue member with the catalogue's retryability. Two halves: a scan of
 * the source under activities/ (nothing builds an ApplicationFailure except portError, no type outside the
 * catalogue is named), and each adapter's own map run over every failure its tool can produce.
 */
describe('the activities raise only catalogue failures', () => {
  const { ERROR_CATALOGUE, ErrorTypes } = require('../../model/errors');
  const RETRYABLE = new Map<string, boolean>(Object.values(ERROR_CATALOGUE).map((s: any) => [s.type, s.retryable]));
  const ACTIVITIES = join(__dirname, '..', '..', 'activities');
  const sources = files(ACTIVITIES).map((f) => ({ file: f.slice(ACTIVITIES.length + 1), text: require('node:fs').readFileSync(f, 'utf8') as string }));
  const lineOf = (text: string, at: number) => text.slice(0, at).split('\n').length;

  /** The text of a call from its `(` to the matching `)`, skipping brackets inside string and template literals. */
  function callText(text: string, open: number): string {
    let depth = 0;
    let quote: string | undefined;
    for (let i = open; i < text.length; i++) {
      const ch = text[i];
      if (quote) {
        if (ch === '\\') i++;
        else if (ch === quote) quote = undefined;
        continue;
      }
      if (ch === "'" || ch === '"' || ch === '`') quote = ch;
      else if (ch === '(') depth++;
      else if (ch === ')' && --depth === 0) return text.slice(open, i + 1);
    }
    return text.slice(open);
  }

  /** ApplicationFailures built directly, with the type and retryability each sets where the source says them. */
  function directRaises(file: string, text: string): { where: string; type?: string; retryable?: boolean }[] {
    const out: { where: string; type?: string; retryable?: boolean }[] = [];
    for (const m of text.matchAll(/ApplicationFailure\s*\.\s*(retryable|nonRetryable|create|fromError)\s*\(|new\s+ApplicationFailure\s*\(/g)) {
      const call = callText(text, m.index! + m[0].length - 1);
      const typed = [...call.matchAll(/ErrorTypes\.(\w+)|'([A-Z]\w*Error)'/g)].map((t) => (t[1] ? ErrorTypes[t[1]] ?? `ErrorTypes.${t[1]}` : t[2]));
      const flag = /nonRetryable:\s*(true|false)\b/.exec(call)?.[1];
      const retryable = m[1] === 'retryable' ? true : m[1] === 'nonRetryable' ? false : flag ? flag === 'false' : undefined;
      out.push({ where: `${file}:${lineOf(text, m.index!)}`, type: typed.at(-1), retryable });
    }
    return out;
  }

  /** `'…Error'` literals that are neither a catalogue type nor an Error class's own name. */
  function strayTypeNames(file: string, text: string): string[] {
    const out: string[] = [];
    for (const m of text.matchAll(/'([A-Z][A-Za-z]*Error)'/g)) {
      const before = text.slice(Math.max(0, m.index! - 20), m.index!);
      if (RETRYABLE.has(m[1]) || /\bname\s*(=|===|!==)\s*$/.test(before)) continue;
      out.push(`${file}:${lineOf(text, m.index!)} ${m[1]}`);
    }
    return out;
  }

  test('the scan finds a wrong raise (it can fail)', () => {
    const sample = [
      "throw ApplicationFailure.retryable(`x (${a}, b)`, 'HelmBusyError');",
      "throw ApplicationFailure.nonRetryable('y', ErrorTypes.MetricsUnavailable);",
      'throw ApplicationFailure.create({ message: m, type: ErrorTypes.RolloutFailed, nonRetryable: false, details: [{ s }] });',
      "throw ApplicationFailure.retryable('z', 'WhateverError');",
      "this.name = 'KubeError';",
    ].join('\n');
    expect(directRaises('sample.ts', sample)).toEqual([
      { where: 'sample.ts:1', type: 'HelmBusyError', retryable: true },
      { where: 'sample.ts:2', type: 'MetricsUnavailableError', retryable: false },
      { where: 'sample.ts:3', type: 'RolloutFailedError', retryable: true },
      { where: 'sample.ts:4', type: 'WhateverError', retryable: true },
    ]);
    expect(strayTypeNames('sample.ts', sample)).toEqual(['sample.ts:4 WhateverError']);
  });

  test('the scan reads the source files (the recorder works)', () => {
    expect(sources.map((s) => s.file)).toEqual(expect.arrayContaining(['errors.ts', 'index.ts', 'deploy/helm-deploy.ts', 'helm/helm.ts', 'scanner/trivy.ts']));
    expect(sources.flatMap((s) => directRaises(s.file, s.text)).map((r) => r.where)).toEqual([expect.stringMatching(/^errors\.ts:\d+$/)]);
  });

  test('only portError (activities/errors.ts) builds an ApplicationFailure, so the catalogue alone sets retryability', () => {
    const direct = sources.filter((s) => s.file !== 'errors.ts').flatMap((s) => directRaises(s.file, s.text));
    expect(direct.map((r) => `${r.where} ${r.type ?? '?'}`)).toEqual([]);
  });

  test('any ApplicationFailure built directly names a catalogue type with the catalogue’s retryability', () => {
    const wrong = sources
      .flatMap((s) => directRaises(s.file, s.text))
      .filter((r) => r.type !== undefined && (!RETRYABLE.has(r.type) || (r.retryable !== undefined && r.retryable !== RETRYABLE.get(r.type))))
      .map((r) => `${r.where} ${r.type} retryable=${r.retryable} (catalogue: ${RETRYABLE.get(r.type!) ?? 'absent'})`);
    expect(wrong).toEqual([]);
  });

  test('every ErrorTypes member and every "…Error" type string used under activities/ is in the catalogue', () => {
    const unknownKeys = sources.flatMap((s) => [...s.text.matchAll(/ErrorTypes\.(\w+)/g)].filter((m) => !(m[1] in ERROR_CATALOGUE)).map((m) => `${s.file}: ErrorTypes.${m[1]}`));
    expect(unknownKeys).toEqual([]);
    expect(sources.flatMap((s) => strayTypeNames(s.file, s.text))).toEqual([]);
  });

  /** A mapped failure: in the catalogue, and its nonRetryable flag is the catalogue's. */
  const inCatalogue = (f: any) => ({ type: f.type, known: RETRYABLE.has(f.type), nonRetryable: f.nonRetryable, catalogueNonRetryable: !RETRYABLE.get(f.type) });
  const expectCatalogued = (f: any, type: string) => {
    expect(inCatalogue(f)).toEqual({ type, known: true, nonRetryable: !RETRYABLE.get(type), catalogueNonRetryable: !RETRYABLE.get(type) });
  };

  test.each([
    ['invalid', 'parse error', 'DeployFailedError'],
    ['unreachable', 'Kubernetes cluster unreachable: context "kind-x" does not exist', 'ClusterConfigError'],
    ['unreachable', 'Kubernetes cluster unreachable: connection refused', 'HelmError'],
    ['busy', 'another operation (install/upgrade/rollback) is in progress', 'HelmError'],
    ['timeout', 'context deadline exceeded', 'HelmError'],
    ['not-found', 'release: not found', 'HelmError'],
    ['failed', 'exit 1', 'HelmError'],
  ])('Helm (%s: %s) is %s', (kind, message, type) => {
    const { HelmError, helmFailure } = require('../../activities/helm/helm');
    expectCatalogued(helmFailure(new HelmError(message, kind)), type);
  });

  test('a cancelled Helm run is the activity’s cancellation, not a typed failure', () => {
    const { HelmError, helmFailure } = require('../../activities/helm/helm');
    expect(helmFailure(new HelmError('helm upgrade: killed by SIGTERM', 'cancelled')).name).toBe('CancelledFailure');
  });

  test.each([
    ['unknown-context', 'ClusterConfigError'],
    ['forbidden', 'ClusterConfigError'],
    ['unreachable', 'ClusterUnreachableError'],
    ['failed', 'ClusterUnreachableError'],
  ])('Kubernetes (%s) is %s, also through guarded', async (kind, type) => {
    const { guarded } = require('../../activities/deploy/guarded');
    const { kubeFailure } = require('../../activities/kubernetes/cluster');
    const { KubeError } = require('../../activities/kubernetes/cluster');
    expectCatalogued(kubeFailure(new KubeError('x', kind)), type);
    const thrown = await guarded(() => Promise.reject(new KubeError('x', kind))).catch((e: unknown) => e);
    expectCatalogued(thrown, type);
  });

  test.each(['ScannerUnavailableError', 'ScannerDatabaseError', 'ScannerTimeoutError', 'ScanReportInvalidError', 'ScannerFailedError'])('the scanner’s %s keeps its type', (type) => {
    const { ScannerError, scannerFailure } = require('../../activities/scanner/trivy');
    expectCatalogued(scannerFailure(new ScannerError('x', type)), type);
  });

  test('a failed scan run is retried and nothing else from the scanner is (as before the catalogue)', () => {
    expect(RETRYABLE.get('ScannerFailedError')).toBe(true);
    for (const t of ['ScannerUnavailableError', 'ScannerDatabaseError', 'ScannerTimeoutError', 'ScanReportInvalidError']) expect({ t, retryable: RETRYABLE.get(t) }).toEqual({ t, retryable: false });
  });

  test.each([
    ['MetricQueryError', 400],
    ['MetricQueryError', 422],
    ['MetricsUnavailableError', 503],
    ['MetricsUnavailableError', 429],
  ])('Prometheus: %s for HTTP %i', (type, status) => {
    const { classifyHttp } = require('../../activities/errors');
    const { MetricQueryError, PROMETHEUS_HTTP, metricsFailure } = require('../../activities/metrics/prometheus');
    expect(classifyHttp(status, PROMETHEUS_HTTP)).toBe(type);
    const f = metricsFailure(new MetricQueryError('q', classifyHttp(status, PROMETHEUS_HTTP)), 'latency');
    expectCatalogued(f, type);
    expect(f.message).toBe('latency: q');
  });

  test('Docker: a failed build is final with its step; a push is classified by the registry’s answer or the network', () => {
    const { BuildError, PushError, buildFailure, pushFailure } = require('../../activities/docker/builder');
    const build = buildFailure(new BuildError('docker build failed at "RUN false"', 'RUN false', ['x']));
    expectCatalogued(build, 'BuildFailedError');
    expect(build.details).toEqual([{ step: 'RUN false', logTail: ['x'] }]);
    expectCatalogued(pushFailure(new PushError('unauthorized: authentication required'), 't'), 'RegistryAuthError');
    expectCatalogued(pushFailure(new PushError('received unexpected HTTP status: 502 Bad Gateway'), 't'), 'RegistryUnavailableError');
    expectCatalogued(pushFailure(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }), 't'), 'RegistryUnavailableError');
    const other = new Error('a bug');
    expect(pushFailure(other, 't')).toBe(other);
  });

  test.each([
    [401, 'RegistryAuthError'],
    [404, 'ImageNotFoundError'],
    [415, 'RegistryRejectedError'],
    [503, 'RegistryUnavailableError'],
  ])('the OCI client’s HTTP %i is %s', (status, type) => {
    const { toRegistryFailure } = require('../../activities/registry/oci');
    const { RegistryHttpError } = require('../../activities/registry/oci-client');
    expectCatalogued(toRegistryFailure(new RegistryHttpError('x', status), 'copy'), type);
  });

  test('the OCI client’s digest mismatch is DigestMismatchError, final, with both digests', () => {
    const { toRegistryFailure } = require('../../activities/registry/oci');
    const { DigestMismatchError } = require('../../activities/registry/oci-client');
    const f = toRegistryFailure(new DigestMismatchError('x', 'sha256:a', 'sha256:b'), 'copy');
    expectCatalogued(f, 'DigestMismatchError');
    expect(f.details).toEqual([{ expected: 'sha256:a', actual: 'sha256:b' }]);
  });
});
