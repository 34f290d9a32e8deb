/**
 * The approvals UI end to end in a real Chromium (Debian's, driven by playwright-core) against the real dev server:
 * a release waits; its requester tries to approve and sees the refusal and its reason; an approver signs in, finds
 * it in the inbox, approves with a comment, and watches the release finish without reloading. Screenshots go to
 * test-artifacts/ui/.
 */
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import { noopActivities } from '../../bench/noop-worker';
import type { SlipwayClient } from '../../client/client';
import { parseConfig } from '../../client/config';
import { buildUiServer } from '../../client/ui/server';
import { plan, ROOT, sampleConfigText, startHarness, uniqueVersion, type Harness } from '../helpers';

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

async function signIn(user: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
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
  await slipway.abort(workflowId, 'cleanup', 'test');
}, 60_000);
