/**
 * The approvals UI end to end in a real Chromium (Debian's, driven by playwright-core) against the real dev server:
 * a release waits; its requester tries to approve and sees the refusal and its reason; an approver signs in, finds
 * it in the inbox, approves with a comment, and watches the release finish without reloading. Then an attacker's
 * payloads — in forged memos and search attributes, and in approval comments — must execute nowhere: not in the inbox,
 * not on the release page, not after live updates. Screenshots go to test-artifacts/ui/.
 */
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import { noopActivities } from '../../bench/noop-worker';
import type { SlipwayClient } from '../../client/client';
import { parseConfig } from '../../model/plan';
import { buildUiServer } from '../../client/ui/server';
import { eventually, plan, ROOT, sampleConfigText, startHarness, uniqueVersion, type Harness } from '../helpers';
import { startForgedRelease, wellFormedInbox } from '../integration/ui-session';

const NS = 'slipway-ui';
const DIGEST = `sha256:${'9'.repeat(64)}`;
const ARTIFACTS = join(ROOT, 'test-artifacts', 'ui');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const approval = '{ approvers: [group:release-managers], minApprovals: 1, requesterCannotApprove: true, timeout: 72h }';

let harness: Harness;
let slipway: SlipwayClient;
let app: FastifyInstance;
let browser: Browser;
let base: string;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  harness = await startHarness(NS, noopActivities(DIGEST, 'browser-host'), 'browser-host');
  slipway = harness.slipway;
  const config = parseConfig(`${sampleConfigText({ approval })}\nui: { auth: { mode: local, users: [alice, carol] } }\n`);
  app = await buildUiServer({ slipway, config, namespace: NS, temporalWebUrl: 'http://127.0.0.1:8233', pollMs: 250 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  // Flags from the machine notes: no sandbox as root, and no background networking on a closed network.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await harness?.stop();
});

async function signIn(user: string, watch?: (page: Page) => void): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  watch?.(page);
  await page.goto(`${base}/`);
  await page.waitForURL(`${base}/login`);
  await page.getByRole('button', { name: user, exact: true }).click();
  await page.waitForURL(`${base}/`);
  await expectText(page, '[data-testid=identity]', user);
  return page;
}

async function expectText(page: Page, selector: string, text: string | RegExp, timeout = 15_000): Promise<void> {
  await page.waitForFunction(
    ([sel, src, flags]) => {
      // Runs in the page, where `document` exists (this file is compiled without DOM types).
      const el = (globalThis as any).document.querySelector(sel as string);
      return Boolean(el && new RegExp(src as string, flags as string).test(el.textContent ?? ''));
    },
    [selector, typeof text === 'string' ? text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : text.source, typeof text === 'string' ? '' : text.flags],
    { timeout },
  );
}

test('requester is refused with the reason; an approver approves from the inbox and sees the release finish live', async () => {
  const { workflowId } = await slipway.start(plan({ requester: 'carol', version: uniqueVersion(), config: sampleConfigText({ approval }) }));
  await slipway.waitFor(workflowId, 'approval', { timeoutMs: 30_000, intervalMs: 100 });
  const link = `a[href="/releases/${encodeURIComponent(workflowId)}"]`;

  // The requester, carol, is a release manager too — but may not approve her own release.
  const carol = await signIn('carol');
  await carol.waitForSelector(link);
  await carol.click(link);
  await expectText(carol, '[data-testid=awaiting]', /Awaiting approval for prod: 0\/1/);
  await carol.getByLabel('Comment').fill('my own release');
  await carol.getByRole('button', { name: 'Approve' }).click();
  await expectText(carol, '#message', /Refused: carol requested this release and the "prod" policy forbids approving one's own release/);
  await carol.screenshot({ path: join(ARTIFACTS, '1-requester-refused.png'), fullPage: true });
  expect((await slipway.status(workflowId)).phase).toBe('awaiting-approval');

  // alice finds it in the inbox, with what QA showed, and approves with a comment.
  const alice = await signIn('alice');
  const row = alice.locator(`tr[data-release="${workflowId}"]`);
  await row.waitFor();
  expect(await row.textContent()).toMatch(/carol[\s\S]*0\/1/);
  await alice.screenshot({ path: join(ARTIFACTS, '2-inbox.png'), fullPage: true });
  await alice.click(link);
  expect(await alice.getAttribute('[data-testid=temporal-web]', 'href')).toBe(`http://127.0.0.1:8233/namespaces/${NS}/workflows/${encodeURIComponent(workflowId)}`);
  await alice.getByLabel('Comment').fill('QA green, ship it');
  const navigations: string[] = [];
  alice.on('framenavigated', (f) => f === alice.mainFrame() && navigations.push(f.url()));
  await alice.getByRole('button', { name: 'Approve' }).click();
  await expectText(alice, '#message', /Approved for prod as alice: 1\/1 approvals — gate complete/);
  // Live: the server pushes the new status; the page is never reloaded.
  await expectText(alice, '[data-testid=phase]', 'succeeded');
  await expectText(alice, '[data-testid=decision]', /approved for prod by alice .*QA green, ship it/);
  await expectText(alice, '[data-testid="stage-promote:prod"]', 'succeeded');
  expect(navigations).toEqual([]);
  await alice.screenshot({ path: join(ARTIFACTS, '3-approved-live.png'), fullPage: true });

  const result = await slipway.result(workflowId);
  expect(result.phase).toBe('succeeded');
  expect(result.approvals).toEqual([expect.objectContaining({ approver: 'alice', decision: 'approved', comment: 'QA green, ship it' })]);
}, 120_000);

test('from the browser: a POST without the CSRF token and an unauthenticated POST are refused', async () => {
  const { workflowId } = await slipway.start(plan({ requester: 'carol', version: uniqueVersion(), config: sampleConfigText({ approval }) }));
  await slipway.waitFor(workflowId, 'approval', { timeoutMs: 30_000, intervalMs: 100 });
  const url = `${base}/releases/${encodeURIComponent(workflowId)}/decide`;
  const alice = await signIn('alice');
  const noToken = await alice.request.post(url, { form: { decision: 'approve' }, headers: { accept: 'application/json' } });
  expect(noToken.status()).toBe(403);
  const anonymous = await (await browser.newContext()).request.post(url, { form: { decision: 'approve' }, headers: { accept: 'application/json' } });
  expect(anonymous.status()).toBe(401);
  expect((await slipway.status(workflowId)).phase).toBe('awaiting-approval');
  await slipway.abort(workflowId, 'cleanup', 'alice');
}, 60_000);

// ---- XSS (issue 10, item 1) ----
/** Each payload marks window.__xss with where it came from and opens a dialog, so any execution is seen. */
const payloads = (where: string) => [
  `<script>window.__xss='${where}';alert('${where}')</script>`,
  `"><img src=x onerror="window.__xss='${where}';alert('${where}')">`,
  `'><svg onload="window.__xss='${where}'">`,
  `javascript:window.__xss='${where}'`,
];
const xss = (where: string) => payloads(where).join(' ');

/** A page that records every dialog, console error and page error; `clean` asserts none came and __xss is unset. */
async function watched(user: string) {
  const seen: string[] = [];
  // Listeners go on before the first page loads: sign-in lands on the inbox.
  const page = await signIn(user, (p) => {
    p.on('dialog', (d) => {
      seen.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
    // Errors (a CSP refusal shows as one) and anything a payload logged; a deliberate 404 page's load error is expected.
    p.on('console', (m) => (m.type() === 'error' || /xss/i.test(m.text())) && !/Failed to load resource/.test(m.text()) && seen.push(`console ${m.type()}: ${m.text()}`));
    p.on('pageerror', (e) => seen.push(`pageerror: ${e.message}`));
  });
  const clean = async (when: string) => {
    const marker = await page.evaluate(() => (globalThis as any).__xss);
    expect({ when, marker, seen }).toEqual({ when, marker: undefined, seen: [] });
  };
  return { page, seen, clean };
}

test('payloads in forged memos, search attributes and comments execute nowhere; the untrusted-queue release is not listed', async () => {
  const approveTwice = '{ approvers: [group:release-managers], minApprovals: 2, requesterCannotApprove: true, timeout: 72h }';
  const { workflowId } = await slipway.start(plan({ requester: 'ci-bot', version: uniqueVersion(), config: sampleConfigText({ approval: approveTwice }) }));
  await slipway.waitFor(workflowId, 'approval', { timeoutMs: 30_000, intervalMs: 100 });

  // What anyone with a CI credential can do: look-alike releases on a queue no trusted worker polls, carrying
  // payloads in every memo field the inbox shows, and in the search attributes.
  const inbox = { ...wellFormedInbox(DIGEST), received: xss('memo-received'), required: xss('memo-required'), requester: xss('memo-requester'), environment: xss('memo-env') };
  const forgedMalformed = await startForgedRelease(slipway, {
    version: uniqueVersion(),
    requester: xss('sa-requester'),
    inbox: { ...inbox, references: { [xss('memo-ref-key')]: xss('memo-ref') }, stages: [{ id: xss('memo-stage') }] },
  });
  // Well-formed memo, payload in the search attributes only: the memo schema lets it through, the queue filter not.
  const forgedWellFormed = await startForgedRelease(slipway, { version: `${uniqueVersion()}`, service: 'delivery', requester: xss('sa-requester-2'), inbox: wellFormedInbox(DIGEST) });
  // Visibility is eventually consistent: wait until the forgeries are listable, so "not listed" means filtered.
  await eventually(async () => {
    const ids: string[] = [];
    for await (const wf of slipway.client.workflow.list({ query: `WorkflowId = '${forgedMalformed}' OR WorkflowId = '${forgedWellFormed}' OR WorkflowId = '${workflowId}'` })) ids.push(wf.workflowId);
    return ids.length === 3;
  });

  // bob (a release manager) approves first, from elsewhere, with payloads in his comment: 1 of 2.
  await slipway.decide(workflowId, 'approve', { approver: 'bob', comment: xss('comment-bob'), digest: DIGEST, environment: 'prod' });

  const alice = await watched('alice');
  await alice.page.locator(`tr[data-release="${workflowId}"]`).waitFor();
  await alice.page.screenshot({ path: join(ARTIFACTS, '4-inbox-with-forgeries.png'), fullPage: true });
  await alice.clean('inbox');
  expect(await alice.page.locator(`tr[data-release="${forgedMalformed}"]`).count()).toBe(0);
  expect(await alice.page.locator(`tr[data-release="${forgedWellFormed}"]`).count()).toBe(0);

  // The forged release's page is refused: it is not a Slipway release.
  const forgedPage = await alice.page.goto(`${base}/releases/${encodeURIComponent(forgedMalformed)}`);
  expect(forgedPage?.status()).toBe(404);
  await alice.clean('forged release page');

  // The real release page shows bob's comment as text.
  await alice.page.goto(`${base}/releases/${encodeURIComponent(workflowId)}`);
  await expectText(alice.page, '[data-testid=decision]', /approved for prod by bob/);
  expect(await alice.page.locator('[data-testid=decision]').first().textContent()).toContain(payloads('comment-bob')[0]);
  await alice.clean('release page');

  // alice approves with payloads in her comment; the decision arrives over SSE (no reload) and the message as text.
  const navigations: string[] = [];
  alice.page.on('framenavigated', (f) => f === alice.page.mainFrame() && navigations.push(f.url()));
  await alice.page.getByLabel('Comment').fill(xss('comment-alice'));
  await alice.page.getByRole('button', { name: 'Approve' }).click();
  await expectText(alice.page, '#message', /Approved for prod as alice: 2\/2 approvals — gate complete/);
  await expectText(alice.page, '[data-testid=phase]', 'succeeded');
  await expectText(alice.page, 'li[data-testid=decision]:nth-child(2)', /approved for prod by alice/);
  expect(navigations).toEqual([]);
  expect(await alice.page.locator('li[data-testid=decision]:nth-child(2)').textContent()).toContain(payloads('comment-alice')[1]);
  await alice.page.screenshot({ path: join(ARTIFACTS, '5-payloads-as-text.png'), fullPage: true });
  await alice.clean('after SSE updates');

  // A fresh load of the finished release renders the stored comments from the server side, still inert.
  await alice.page.reload();
  await expectText(alice.page, '[data-testid=phase]', 'succeeded');
  await alice.clean('reloaded release page');

  for (const id of [forgedMalformed, forgedWellFormed]) await slipway.client.workflow.getHandle(id).terminate('xss test done').catch(() => undefined);
}, 120_000);

test('the CSP allows only this origin\'s static script and stylesheet', async () => {
  const res = await fetch(`${base}/login`);
  const csp = res.headers.get('content-security-policy') ?? '';
  expect(csp).toContain("script-src 'self'");
  expect(csp).not.toContain('unsafe-inline');
  const js = await fetch(`${base}/static/release.js`);
  expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
  expect(js.headers.get('cache-control')).toMatch(/max-age=31536000/);
  const css = await fetch(`${base}/static/app.css`);
  expect(css.headers.get('content-type')).toMatch(/^text\/css/);
});
