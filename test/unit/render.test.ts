import { renderCanaryInterval, renderStatus } from '../../client/render';
import type { ReleaseStatus } from '../../model/types';

const interval = (score: number, result: 'Pass' | 'Marginal' | 'Fail', metrics: { name: string; classification: string; deviation: number }[]) => ({ step: 1, at: '2026-12-01T00:00:00Z', weight: 10, score, result, metrics });

test('an interval shows weight, score, verdict and each metric, with the effect size where there was one', () => {
  expect(renderCanaryInterval(interval(50, 'Fail', [{ name: 'error-ratio', classification: 'High', deviation: 3.456 }, { name: 'p99-latency', classification: 'Pass', deviation: 1 }]))).toBe(
    'interval at 10 %: score 50 Fail (error-ratio High ×3.46, p99-latency Pass)',
  );
});

test('the status lists the canary and every judged interval', () => {
  const status = {
    service: 'delivery',
    version: 'v1.0.2',
    phase: 'running',
    requester: 'carol',
    startedAt: '2026-12-01T00:00:00Z',
    stages: [],
    approvals: [],
    references: {},
    canary: { environment: 'prod', state: 'running', step: 2, weight: 10, intervals: [interval(100, 'Pass', []), interval(96, 'Pass', [])] },
  } as unknown as ReleaseStatus;
  const text = renderStatus(status).split('\n');
  expect(text).toContain('canary in prod: running at step 2, weight 10 %');
  expect(text.filter((l) => l.startsWith('  interval at 10 %'))).toEqual(['  interval at 10 %: score 100 Pass', '  interval at 10 %: score 96 Pass']);
});
