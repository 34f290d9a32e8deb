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
