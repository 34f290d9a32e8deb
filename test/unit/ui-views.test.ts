/** The release page's live fragment shows deployments and every judged canary interval; every value is escaped. */
import type { ReleaseSummary } from '../../client/client';
import { inboxPage, releasePage, statusFragment } from '../../client/ui/views';
import { inboxEntrySchema, parseInboxEntry } from '../../model/inbox';
import type { ReleaseStatus } from '../../model/types';

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

// ---- untrusted values (issue 10, item 1): memos, search attributes and status are whatever a workflow's starter
// or worker wrote; none of it may become markup, numbers included. ----

const IMG = '"><img src=x onerror=alert(1)>';
const SCRIPT = '<script>alert(1)</script>';
const who = { user: 'alice', csrf: 'tok', localMode: true };
/** No markup from the payloads: no tag they open, and no inline script at all (only the static one, by src). */
const inert = (html: string) => {
  expect(html).not.toMatch(/<img/i);
  expect(html).not.toContain('<script>');
  expect(html).not.toMatch(/<script(?![^>]*\ssrc="\/static\/release\.js\?v=[0-9a-f]{12}")/);
  expect(html).not.toMatch(/href="javascript:/i);
};

test('inbox: a forged memo with markup in received/required and every string is escaped', () => {
  const row = {
    workflowId: `release:delivery:${IMG}`,
    runId: 'r',
    status: 'RUNNING',
    service: SCRIPT,
    version: IMG,
    startTime: '2026-11-23T10:00:00.000Z',
    inbox: { environment: IMG, digest: IMG, requester: SCRIPT, deadline: IMG, received: IMG, required: SCRIPT, approvers: [IMG], references: { [IMG]: SCRIPT }, stages: [{ id: IMG }] },
  } as unknown as ReleaseSummary;
  const html = inboxPage([row], {}, { services: [IMG], envs: [SCRIPT] }, who);
  inert(html);
  expect(html).toContain('<td>&quot;&gt;&lt;img src=x onerror=alert(1)&gt;/&lt;script&gt;alert(1)&lt;/script&gt;</td>');
});

test('release page and live fragment: strings where numbers belong, markup in every field — all escaped', () => {
  const hostile = {
    ...status,
    service: SCRIPT,
    version: IMG,
    requester: IMG,
    phase: IMG,
    digest: IMG,
    error: SCRIPT,
    references: { [IMG]: SCRIPT },
    stages: [{ id: IMG, kind: 'build', state: IMG, startedAt: '2026-11-23T10:00:00.000Z', endedAt: '2026-11-23T10:00:02.500Z', result: { [IMG]: SCRIPT }, error: IMG }],
    approvals: [{ approver: IMG, decision: SCRIPT, environment: IMG, at: IMG, comment: `${SCRIPT}${IMG}` }],
    awaitingApproval: { environment: IMG, received: IMG, required: SCRIPT, approvers: [IMG], deadline: IMG },
    deployments: { [IMG]: { context: IMG, namespace: SCRIPT, release: IMG, revision: IMG, previousRevision: SCRIPT, image: IMG, state: IMG } },
    canary: { environment: IMG, state: SCRIPT, step: IMG, weight: SCRIPT, decision: { action: IMG, by: SCRIPT }, intervals: [{ step: IMG, at: IMG, weight: IMG, score: SCRIPT, result: IMG, metrics: [{ name: IMG, classification: SCRIPT }] }] },
  } as unknown as ReleaseStatus;
  const page = releasePage(`release:delivery:v1.0.0`, hostile, { csrf: 'tok', temporalWeb: `javascript:${IMG}` }, who);
  inert(page);
  inert(statusFragment(hostile));
  // The decide form carries the environment it was shown for (escaped like everything else).
  expect(page).toContain('<input type="hidden" name="environment" value="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;">');
  // A took-seconds number is still rendered as a number.
  expect(statusFragment({ ...status, stages: [{ id: 'build', kind: 'build', state: 'succeeded', startedAt: '2026-11-23T10:00:00.000Z', endedAt: '2026-11-23T10:00:02.500Z' }] } as ReleaseStatus)).toContain('<td>2.5 s</td>');
});

test('the release page has no inline script or style: one static script by URL, one stylesheet', () => {
  const page = releasePage('release:delivery:v1.0.0', { ...status, awaitingApproval: { environment: 'prod', received: 0, required: 1, approvers: ['alice'], deadline: '2026-11-26T10:00:00.000Z' } } as ReleaseStatus, { csrf: 'tok' }, who);
  expect(page).toMatch(/<script src="\/static\/release\.js\?v=[0-9a-f]{12}" defer><\/script>/);
  expect(page).toMatch(/<link rel="stylesheet" href="\/static\/app\.css\?v=[0-9a-f]{12}">/);
  expect(page).not.toMatch(/<style|style="/);
  expect(page).toContain('name="environment" value="prod"');
});

test('inbox memo schema: a real entry parses; forged shapes are dropped', () => {
  const real = {
    environment: 'prod',
    digest: `sha256:${'a'.repeat(64)}`,
    requester: 'ci-bot',
    deadline: '2026-11-26T10:00:00.000Z',
    received: 0,
    required: 1,
    approvers: ['dave', 'group:release-managers'],
    references: { qa: `127.0.0.1:5000/delivery:v1.0.0@sha256:${'a'.repeat(64)}` },
    stages: [{ id: 'build', endedAt: '2026-11-23T10:00:00.000Z' }, { id: 'deploy:qa' }],
  };
  expect(parseInboxEntry(real)).toEqual(real);
  expect(inboxEntrySchema.safeParse(real).success).toBe(true);
  for (const bad of [
    { ...real, received: IMG },
    { ...real, required: '1' },
    { ...real, requester: SCRIPT },
    { ...real, environment: IMG },
    { ...real, deadline: 'tomorrow' },
    { ...real, references: { qa: 'javascript:alert(1)' } },
    { ...real, stages: [{ id: IMG }] },
    { ...real, approvers: [SCRIPT] },
    null,
    'inbox',
  ]) {
    expect(parseInboxEntry(bad)).toBeUndefined();
  }
});
