/**
 * The approvals UI server against the real dev server (activities are no-ops): the inbox query and its filters,
 * sign-in, CSRF, decisions through the Updates, and proxy identity believed only from the proxy's address.
 */
import type { FastifyInstance } from 'fastify';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noopActivities } from '../../bench/noop-worker';
import { main } from '../../client/cli';
import { parseConfig } from '../../model/plan';
import { buildUiServer } from '../../client/ui/server';
import { SlipwayClient } from '../../client/client';
import { eventually, plan, sampleConfigText, startHarness, terminateRunning, uniqueVersion, type Harness } from '../helpers';
import { Session, startForgedRelease, wellFormedInbox } from './ui-session';

const NS = 'slipway-ui';
const DIGEST = `sha256:${'f'.repeat(64)}`;
const approval = '{ approvers: [group:release-managers], minApprovals: 1, requesterCannotApprove: true, timeout: 72h }';
const configText = (ui: string) => `${sampleConfigText({ approval })}\nui: ${ui}\n`;
const LOCAL = configText('{ auth: { mode: local, users: [alice, carol, mallory] } }');

let harness: Harness;
let slipway: SlipwayClient;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'slipway-ui-'));
  harness = await startHarness(NS, noopActivities(DIGEST, 'ui-host'), 'ui-host');
  slipway = harness.slipway;
  await terminateRunning(slipway, 'ui tests start from an empty inbox');
});
afterAll(async () => {
  await terminateRunning(slipway, 'ui tests clean up after themselves');
  await harness.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function awaiting(opts: { service?: string; requester?: string } = {}): Promise<string> {
  const { workflowId } = await slipway.start(plan({ ...opts, version: uniqueVersion(), config: sampleConfigText({ approval }) }));
  await slipway.waitFor(workflowId, 'approval', { timeoutMs: 30_000, intervalMs: 100 });
  return workflowId;
}

const listen = async (app: FastifyInstance) => {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return app;
};

describe('local mode', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await listen(await buildUiServer({ slipway, config: parseConfig(LOCAL), namespace: NS, temporalWebUrl: 'http://127.0.0.1:8233', pollMs: 100 }));
  });
  afterAll(() => app.close());

  test('unauthenticated: pages send you to sign in, POSTs are refused', async () => {
    const s = new Session(app);
    const page = await s.request('GET', '/');
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe('/login');
    const id = await awaiting();
    const post = await s.request('POST', `/releases/${encodeURIComponent(id)}/decide`, { decision: 'approve' });
    expect(post.statusCode).toBe(401);
    expect((await slipway.status(id)).phase).toBe('awaiting-approval');
  });

  test('sign-in needs the CSRF token and a configured user', async () => {
    const s = new Session(app);
    await s.request('GET', '/login');
    expect((await s.request('POST', '/login', { user: 'alice' })).statusCode).toBe(403);
    const page = await s.request('GET', '/login');
    expect((await s.request('POST', '/login', { _csrf: s.csrfFrom(page.body), user: 'eve' })).statusCode).toBe(400);
    await s.signIn('alice');
    const inbox = await s.request('GET', '/');
    expect(inbox.statusCode).toBe(200);
    expect(inbox.body).toContain('data-testid="identity">alice<');
    expect(inbox.headers['x-frame-options']).toBe('DENY');
  });

  test('the inbox lists what waits, with digest, requester, approvals and QA image; filters by service', async () => {
    const a = await awaiting({ requester: 'carol' });
    const b = await awaiting({ service: 'slow' });
    const s = new Session(app);
    await s.signIn('alice');
    type Row = { workflowId: string; inbox: { requester: string; digest: string; received: number; required: number } };
    // Visibility is eventually consistent: wait until both releases are listed.
    const rows = await eventually(async () => {
      const list = JSON.parse((await s.request('GET', '/', undefined, 'application/json')).body) as Row[];
      return list.some((r) => r.workflowId === a) && list.some((r) => r.workflowId === b) && list;
    });
    const row = rows.find((r) => r.workflowId === a)!;
    expect(row.inbox).toMatchObject({ requester: 'carol', digest: DIGEST, received: 0, required: 1 });
    expect(rows.map((r) => r.workflowId)).toContain(b);

    const html = (await s.request('GET', '/')).body;
    expect(html).toContain(`data-release="${a}"`);
    expect(html).toMatch(/qa: <code>127\.0\.0\.1:5000\/delivery[^<]*@sha256:f{64}<\/code>/);
    const filtered = (await s.request('GET', '/?service=slow')).body;
    expect(filtered).toContain(`data-release="${b}"`);
    expect(filtered).not.toContain(`data-release="${a}"`);
    expect((await s.request('GET', '/?env=qa')).body).toContain('Nothing is waiting');
  });

  test('decisions: no CSRF token → 403; the requester → refused with the reason; an approver → approved as themselves', async () => {
    const id = await awaiting({ requester: 'carol' });
    const url = `/releases/${encodeURIComponent(id)}`;
    const carol = new Session(app);
    await carol.signIn('carol');
    const page = await carol.request('GET', url);
    expect(page.body).toContain('Awaiting approval for <b>prod</b>');
    const noToken = await carol.request('POST', `${url}/decide`, { decision: 'approve' }, 'application/json');
    expect(noToken.statusCode).toBe(403);
    const refused = await carol.request('POST', `${url}/decide`, { decision: 'approve', environment: 'prod', _csrf: carol.csrfFrom(page.body), approver: 'alice' }, 'application/json');
    expect(refused.statusCode).toBe(409);
    expect(JSON.parse(refused.body).message).toMatch(/carol requested this release/);

    // A token minted for carol is no good to alice.
    const alice = new Session(app);
    await alice.signIn('alice');
    alice.cookies.slipway_csrf = carol.cookies.slipway_csrf;
    expect((await alice.request('POST', `${url}/decide`, { decision: 'approve', environment: 'prod', _csrf: carol.csrfFrom(page.body) })).statusCode).toBe(403);

    const alicePage = await alice.request('GET', url);
    const ok = await alice.request('POST', `${url}/decide`, { decision: 'approve', comment: 'ship it', digest: DIGEST, environment: 'prod', _csrf: alice.csrfFrom(alicePage.body) });
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toContain('Approved for prod as alice');
    const result = await slipway.result(id);
    expect(result.phase).toBe('succeeded');
    expect(result.approvals).toEqual([expect.objectContaining({ approver: 'alice', comment: 'ship it' })]);
  });

  test('nothing changes state on GET', async () => {
    const id = await awaiting();
    const s = new Session(app);
    await s.signIn('alice');
    const get = await s.request('GET', `/releases/${encodeURIComponent(id)}/decide?decision=approve`);
    expect(get.statusCode).toBe(404);
    expect((await slipway.status(id)).phase).toBe('awaiting-approval');
    await slipway.abort(id, 'cleanup', 'alice');
  });

  test('a mismatching digest from the page is refused', async () => {
    const id = await awaiting();
    const s = new Session(app);
    await s.signIn('alice');
    const page = await s.request('GET', `/releases/${encodeURIComponent(id)}`);
    const res = await s.request('POST', `/releases/${encodeURIComponent(id)}/decide`, { decision: 'approve', digest: `sha256:${'0'.repeat(64)}`, environment: 'prod', _csrf: s.csrfFrom(page.body) }, 'application/json');
    expect(res.statusCode).toBe(409);
    // Refused by the validator (or, with signed decisions, because the token is bound to the digest shown).
    expect(JSON.parse(res.body).message).toMatch(/digest mismatch|issued for digest sha256:0{64}, the release is sha256:f{64}/);
    await slipway.abort(id, 'cleanup', 'alice');
  });
});

describe('proxy mode', () => {
  // Requests come from 127.0.0.1: trusted when the proxy list says so, not when it names another address.
  const proxied = async (trusted: string) =>
    listen(await buildUiServer({ slipway, config: parseConfig(configText(`{ auth: { mode: proxy, trustedProxies: [${trusted}], userHeader: X-Auth-User, groupsHeader: X-Auth-Groups } }`)), namespace: NS }));

  test('identity headers from an address that is not the proxy are ignored', async () => {
    const app = await proxied('10.1.2.3');
    const s = new Session(app, { 'x-auth-user': 'alice', 'x-auth-groups': 'release-managers' });
    expect((await s.request('GET', '/')).statusCode).toBe(401);
    expect((await s.request('GET', '/login')).statusCode).toBe(404);
    await app.close();
  });

  test('from the proxy, the header identity and its groups decide', async () => {
    const app = await proxied('127.0.0.1');
    const id = await awaiting({ requester: 'ci-bot' });
    const s = new Session(app, { 'x-auth-user': 'zoe', 'x-auth-groups': 'release-managers, other' });
    const page = await s.request('GET', `/releases/${encodeURIComponent(id)}`);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('data-testid="identity">zoe<');
    const res = await s.request('POST', `/releases/${encodeURIComponent(id)}/decide`, { decision: 'approve', environment: 'prod', _csrf: s.csrfFrom(page.body) }, 'application/json');
    expect(res.statusCode).toBe(200);
    expect((await slipway.result(id)).approvals[0]).toMatchObject({ approver: 'zoe' });

    const noGroups = new Session(app, { 'x-auth-user': 'yann' });
    const id2 = await awaiting();
    const p2 = await noGroups.request('GET', `/releases/${encodeURIComponent(id2)}`);
    const refused = await noGroups.request('POST', `/releases/${encodeURIComponent(id2)}/decide`, { decision: 'approve', environment: 'prod', _csrf: noGroups.csrfFrom(p2.body) }, 'application/json');
    expect(refused.statusCode).toBe(409);
    expect(JSON.parse(refused.body).message).toMatch(/yann is not an approver/);
    await slipway.abort(id2, 'cleanup', 'alice');
    await app.close();
  });
});

describe('hardening (issue 10)', () => {
  test('the inbox lists only releases on the trusted queue with a well-formed memo', async () => {
    const app = await listen(await buildUiServer({ slipway, config: parseConfig(LOCAL), namespace: NS, secret: Buffer.alloc(32, 1) }));
    const real = await awaiting();
    // Look-alikes: one on an untrusted queue with a memo that passes the schema, one whose memo does not.
    const forged = await startForgedRelease(slipway, { version: uniqueVersion(), inbox: wellFormedInbox(DIGEST) });
    const malformed = await startForgedRelease(slipway, { version: uniqueVersion(), inbox: { ...wellFormedInbox(DIGEST), received: '<img src=x onerror=alert(1)>' } });
    // A client that trusts the look-alikes' queue sees both in visibility, but only the well-formed memo parses.
    const untrusted = new SlipwayClient(slipway.client, 'untrusted-ci-queue');
    const seen = await eventually(async () => {
      const rows = await untrusted.list({ awaitingApproval: true });
      return rows.some((r) => r.workflowId === forged) && rows.some((r) => r.workflowId === malformed) && rows;
    });
    expect(seen.find((r) => r.workflowId === forged)?.inbox).toMatchObject({ environment: 'prod', received: 0 });
    expect(seen.find((r) => r.workflowId === malformed)?.inbox).toBeUndefined();

    const s = new Session(app);
    await s.signIn('alice');
    const ids = await eventually(async () => {
      const list = (JSON.parse((await s.request('GET', '/', undefined, 'application/json')).body) as { workflowId: string }[]).map((r) => r.workflowId);
      return list.includes(real) && list;
    });
    expect(ids).not.toContain(forged);
    expect(ids).not.toContain(malformed);
    for (const id of [forged, malformed, real]) await slipway.client.workflow.getHandle(id).terminate('test done');
    await app.close();
  });

  test("CSP without 'unsafe-inline'; the script and stylesheet are static files with long-cache headers", async () => {
    const app = await listen(await buildUiServer({ slipway, config: parseConfig(LOCAL), namespace: NS, secret: Buffer.alloc(32, 1) }));
    const s = new Session(app);
    const page = await s.request('GET', '/login');
    expect(page.headers['content-security-policy']).toMatch(/script-src 'self'; style-src 'self'/);
    expect(page.headers['content-security-policy']).not.toContain('unsafe-inline');
    expect(page.body).not.toMatch(/<script>|<style>|style="/);
    const cssUrl = /<link rel="stylesheet" href="([^"]+)">/.exec(page.body)![1];
    const css = await s.request('GET', cssUrl);
    expect([css.statusCode, css.headers['content-type'], css.headers['cache-control']]).toEqual([200, 'text/css; charset=utf-8', 'public, max-age=31536000, immutable']);
    const js = await s.request('GET', '/static/release.js');
    expect([js.statusCode, js.headers['content-type']]).toEqual([200, 'text/javascript; charset=utf-8']);
    expect(js.body).toContain('new EventSource');
    await app.close();
  });

  test('the session secret is created 0600 in a 0700 directory and survives a restart; the cookie expires', async () => {
    const secretFile = join(dir, 'ui', 'session-secret');
    const config = parseConfig(configText(`{ auth: { mode: local, users: [alice] }, session: { maxAge: 2h, secretFile: "${secretFile}" } }`));
    const first = await listen(await buildUiServer({ slipway, config, namespace: NS }));
    expect(statSync(secretFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'ui')).mode & 0o777).toBe(0o700);
    const s = new Session(first);
    const page = await s.request('GET', '/login');
    const login = await s.request('POST', '/login', { _csrf: s.csrfFrom(page.body), user: 'alice' });
    expect(login.headers['set-cookie']).toMatch(/slipway_session=alice\.\d+\.[\w-]{12}\.[\w-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=7200/);
    const expires = Number(/alice\.(\d+)\./.exec(s.cookies.slipway_session)![1]);
    expect(Math.abs(expires - (Date.now() / 1000 + 7200))).toBeLessThan(60);
    await first.close();
    // A restarted UI reads the same secret: alice is still signed in.
    const second = await listen(await buildUiServer({ slipway, config, namespace: NS }));
    const again = Object.assign(new Session(second), { cookies: s.cookies });
    expect((await again.request('GET', '/')).statusCode).toBe(200);
    await second.close();
  });

  test('slipway ui: local mode on a non-loopback address is refused before connecting, naming the field and the flag', async () => {
    const file = join(dir, 'slipway.yaml');
    writeFileSync(file, configText('{ auth: { mode: local, users: [alice] } }'));
    const errors: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => errors.push(String(chunk)) > 0) as typeof process.stderr.write;
    try {
      expect(await main(['--config', file, '--address', '127.0.0.1:1', 'ui', '--host', '0.0.0.0', '--port', '0'])).toBe(2);
    } finally {
      process.stderr.write = write;
    }
    expect(errors.join('')).toMatch(/ui\.auth\.mode: local .*--host 0\.0\.0\.0 is not a loopback address/);
  });

  test('slipway ui --rotate-session-secret: a new current secret, the old one kept as previous (verification only)', async () => {
    const secretFile = join(dir, 'rotate', 'session-secret');
    const file = join(dir, 'rotate.yaml');
    writeFileSync(file, configText(`{ auth: { mode: local, users: [alice] }, session: { secretFile: "${secretFile}" } }`));
    const write = process.stderr.write;
    const errors: string[] = [];
    process.stderr.write = ((chunk: string) => errors.push(String(chunk)) > 0) as typeof process.stderr.write;
    try {
      // Nothing listens on port 1: the rotation happens, then connecting to Temporal fails and the command ends.
      await main(['--config', file, '--address', '127.0.0.1:1', 'ui', '--rotate-session-secret', '--port', '0']);
      const first = JSON.parse(readFileSync(secretFile, 'utf8'));
      await main(['--config', file, '--address', '127.0.0.1:1', 'ui', '--rotate-session-secret', '--port', '0']);
      const second = JSON.parse(readFileSync(secretFile, 'utf8'));
      expect(second.previous).toBe(first.current);
      expect(second.current).not.toBe(first.current);
      expect(statSync(secretFile).mode & 0o777).toBe(0o600);
    } finally {
      process.stderr.write = write;
    }
    expect(errors.join('')).toContain('session secret rotated');
  }, 60_000);
});
