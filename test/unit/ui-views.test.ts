/** The release page's live fragment shows deployments and every judged canary interval, escaped. */
import { statusFragment } from '../../client/ui/views';
import type { ReleaseStatus } from '../../workflows/types';

const status: ReleaseStatus = {
  service: 'delivery',
  version: 'v1.2.0',
  requester: 'ci-bot',
  phase: 'running',
  references: {},
  stages: [],
  approvals: [],
  startedAt: '2026-11-23T10:00:00.000Z',
  deployments: { prod: { context: 'kwok-slipway-prod', namespace: 'delivery', release: 'delivery', previousRevision: 3, image: 'x', state: 'canary' } },
  canary: {
    environment: 'prod',
    state: 'running',
    step: 1,
    weight: 25,
    intervals: [{ step: 1, at: '2026-11-23T10:05:00.000Z', weight: 25, score: 80, result: 'Marginal', metrics: [{ name: '<errors>', classification: 'Pass', deviation: 1 }, { name: 'latency', classification: 'High', deviation: 1.3 }] }],
  },
};

test('deployments and canary intervals are on the page', () => {
  const html = statusFragment(status);
  expect(html).toContain('data-testid="deployment-prod"');
  expect(html).toContain('<code>kwok-slipway-prod/delivery</code>');
  expect(html).toMatch(/<td>3<\/td><td>canary<\/td>/);
  expect(html).toContain('running · step 2 · weight 25 %');
  expect(html).toContain('<td>80.0</td>');
  expect(html).toContain('&lt;errors&gt;: Pass, latency: High');
  expect(html).not.toContain('<errors>');
});

test('no deployment, no canary: no empty sections', () => {
  const html = statusFragment({ ...status, deployments: undefined, canary: undefined });
  expect(html).not.toContain('Deployments');
  expect(html).not.toContain('Canary in');
});
