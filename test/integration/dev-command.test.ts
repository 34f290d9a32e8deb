/**
 * `slipway dev` as a user runs it: stack, workers, the approvals UI and a demo release of the sample service that
 * waits for a person; approved here through the UI's own HTTP endpoints (sign in, CSRF token, decide).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { SlipwayClient } from '../../client/client';
import { ROOT, uniqueVersion } from '../helpers';
import { testStack } from '../setup/stack-info';

let dev: ChildProcess | undefined;
afterAll(() => {
  if (dev && dev.exitCode === null) dev.kill('SIGKILL');
});

async function exitsWithin(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return Promise.race([new Promise<boolean>((r) => child.once('exit', () => r(true))), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

test('slipway dev stops cleanly on SIGTERM even while it waits for an approval', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, SLIPWAY_UI_PORT: String(19000 + Math.floor(Math.random() * 1000)), SLIPWAY_BUILDER_ID: 'dev-test' };
  delete env.TEMPORAL_ADDRESS;
  const version = uniqueVersion();
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'client', 'cli.js'), 'dev', '--version', version], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const deadline = Date.now() + 150_000;
  while (!/approve in the UI/.test(stderr) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 250));
  child.kill('SIGTERM');
  const exited = await exitsWithin(child, 20_000);
  if (!exited) child.kill('SIGKILL');
  expect(exited).toBe(true);
  // The release it started still waits for a person: end it, or it stays in the demo's inbox for days.
  const client = await SlipwayClient.connect(testStack().temporal, 'default');
  await client.handle(`release:delivery:${version}`).terminate('the dev-command test is done with it').catch(() => undefined);
  await client.client.connection.close();
}, 200_000);

test('slipway dev: a demo release waits for approval, is approved in the UI, and is promoted', async () => {
  const version = uniqueVersion();
  const port = 18000 + Math.floor(Math.random() * 1000);
  let stderr = '';
  // As a user on the embedded stack: no TEMPORAL_ADDRESS, so `dev` finds (or starts) the local stack itself.
  const env: NodeJS.ProcessEnv = { ...process.env, SLIPWAY_UI_PORT: String(port), SLIPWAY_BUILDER_ID: 'dev-test' };
  delete env.TEMPORAL_ADDRESS;
  dev = spawn(process.execPath, [join(ROOT, 'dist', 'client', 'cli.js'), 'dev', '--version', version], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  dev.stderr!.on('data', (d) => (stderr += String(d)));
  const deadline = Date.now() + 150_000;
  while (!/approve in the UI/.test(stderr)) {
    if (Date.now() > deadline || dev.exitCode !== null) throw new Error(`slipway dev did not reach the approval:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  expect(stderr).toMatch(new RegExp(`approvals UI: http://127\\.0\\.0\\.1:${port}`));
  expect(stderr).toMatch(/Temporal Web: http:\/\/127\.0\.0\.1:8233\/namespaces\/default\/workflows\/release%3Adelivery%3A/);

  // Sign in as alice and approve, as the browser would.
  const base = `http://127.0.0.1:${port}`;
  const cookies: string[] = [];
  const remember = (r: Response) => r.headers.getSetCookie().forEach((c) => cookies.push(c.split(';')[0]));
  const login = await fetch(`${base}/login`);
  remember(login);
  const csrf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)![1];
  const signIn = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { cookie: cookies.join('; '), 'content-type': 'application/x-www-form-urlencoded' }, body: `_csrf=${csrf(await login.text())}&user=alice` });
  remember(signIn);
  const id = `release:delivery:${version}`;
  const page = await fetch(`${base}/releases/${encodeURIComponent(id)}`, { headers: { cookie: cookies.join('; ') } });
  const html = await page.text();
  // The form's hidden fields, as a browser sends them: the environment and digest it was shown.
  const field = (name: string) => encodeURIComponent(new RegExp(`name="${name}" value="([^"]+)"`).exec(html)![1]);
  const decide = await fetch(`${base}/releases/${encodeURIComponent(id)}/decide`, {
    method: 'POST',
    headers: { cookie: cookies.join('; '), accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
    body: `_csrf=${csrf(html)}&environment=${field('environment')}&digest=${field('digest')}&decision=approve&comment=from+the+dev+test`,
  });
  expect(await decide.json()).toMatchObject({ ok: true });

  const client = await SlipwayClient.connect(testStack().temporal, 'default');
  const { status } = await client.waitFor(id, 'done', { timeoutMs: 180_000 });
  expect(status.phase).toBe('succeeded');
  // Production is canaried behind Traefik under dev's own bounded load (skipped when nothing ran there before).
  expect(status.stages.map((s) => s.id)).toEqual(['plan', 'preflight', 'build', 'scan', 'push', 'chart', 'deploy:qa', 'smoke:qa', 'approval:prod', 'scan:prod', 'promote:prod', 'deploy:prod', 'canary:prod', 'smoke:prod']);
  expect(['succeeded', 'skipped']).toContain(status.stages.find((s) => s.id === 'canary:prod')?.state);
  // The demo deploys to the local clusters: QA and production each run this release's digest.
  expect(status.deployments?.prod).toMatchObject({ context: 'kwok-slipway-prod', namespace: 'delivery', state: 'deployed', image: `127.0.0.1:5000/prod/delivery@${status.digest}` });
  expect(status.approvals[0]).toMatchObject({ approver: 'alice', comment: 'from the dev test' });
  await client.client.connection.close();

  // Ctrl-C stops what dev started and lets it exit.
  dev.kill('SIGTERM');
  expect(await exitsWithin(dev, 20_000)).toBe(true);
}, 300_000);
