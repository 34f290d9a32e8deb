/**
 * runTool: the tool runs in its own process group, and a timeout or a cancellation ends the whole group (the tool,
 * its children and grandchildren), SIGKILL following the cancel signal after the grace period; inside an activity
 * it heartbeats on a timer with progress and obeys the activity's cancellation without being handed a signal.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { join } from 'node:path';
import { runTool, type ToolRun } from '../../activities/exec';
import { alive, recordedPids, script, scratchDir, spawnsSleepers, waitUntil } from '../processes';

const dir = scratchDir('exec');
let n = 0;
const sleeper = (prelude = '') => {
  const pidFile = join(dir, `pids-${++n}`);
  return { pidFile, bin: script(dir, `tool-${n}`, spawnsSleepers(pidFile, prelude)) };
};
const started = async (pidFile: string): Promise<number[]> => {
  let pids: number[] | undefined;
  await waitUntil(() => Boolean((pids = recordedPids(pidFile))), 5_000, 'the tool started its children');
  return pids!;
};
/** A TypeScript module as CommonJS in the scratch dir (exec.ts imports only packages and Node built-ins). */
function transpiled(source: string): string {
  const ts = require('typescript') as typeof import('typescript');
  const { readFileSync, writeFileSync } = require('node:fs') as typeof import('node:fs');
  const out = join(dir, 'exec.js');
  writeFileSync(out, ts.transpileModule(readFileSync(source, 'utf8'), { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText);
  return out;
}
const allGone = (pids: number[], ms: number) => waitUntil(() => pids.every((p) => !alive(p)), ms, `pids ${pids.join(' ')} ended`);

afterAll(() => {
  // Nothing may be left behind even when an assertion failed.
  for (let i = 1; i <= n; i++) for (const p of recordedPids(join(dir, `pids-${i}`)) ?? []) if (alive(p)) process.kill(p, 'SIGKILL');
});

test('a timeout ends the tool and every process it started', async () => {
  const { pidFile, bin } = sleeper();
  const t0 = Date.now();
  const run = runTool(bin, [], { timeoutMs: 1_000, killGraceMs: 1_000 });
  const pids = await started(pidFile);
  const result = await run;
  expect(result).toMatchObject({ timedOut: true, cancelled: false, code: null, signal: 'SIGTERM' });
  expect(Date.now() - t0).toBeLessThan(4_000);
  await allGone(pids, 3_000);
});

test('cancellation ends the group; one that ignores the cancel signal gets SIGKILL after the grace period', async () => {
  // trap '' TERM: the shell and (inherited) its sleeps ignore SIGTERM.
  const { pidFile, bin } = sleeper("trap '' TERM");
  const abort = new AbortController();
  const run = runTool(bin, [], { timeoutMs: 60_000, signal: abort.signal, killGraceMs: 1_000 });
  const pids = await started(pidFile);
  const t0 = Date.now();
  abort.abort();
  await new Promise((r) => setTimeout(r, 500));
  expect(pids.filter(alive)).toEqual(pids); // SIGTERM was ignored, as the script asked
  const result: ToolRun = await run;
  expect(result).toMatchObject({ cancelled: true, timedOut: false, signal: 'SIGKILL' });
  expect(Date.now() - t0).toBeLessThan(3_000);
  await allGone(pids, 2_000);
});

test('leftovers of a tool that exited on its own are ended too', async () => {
  const pidFile = join(dir, 'leftover');
  const bin = script(dir, 'leaves-a-child', `sleep 1000 </dev/null >/dev/null 2>&1 &\necho $! > '${pidFile}'\necho done`);
  const result = await runTool(bin, [], { timeoutMs: 10_000 });
  expect(result).toMatchObject({ code: 0, stdout: 'done\n' });
  const pid = Number(require('node:fs').readFileSync(pidFile, 'utf8'));
  await waitUntil(() => !alive(pid), 2_000, 'the leftover sleep ended');
});

test('a missing binary is a failed run with the reason, not a crash', async () => {
  const result = await runTool(join(dir, 'no-such-tool'), [], { timeoutMs: 1_000 });
  expect(result.code).toBeNull();
  expect(result.stderr).toMatch(/ENOENT/);
});

test('inside an activity: heartbeats on a timer with progress, and the activity cancellation reaches the tool', async () => {
  const { pidFile, bin } = sleeper();
  const env = new MockActivityEnvironment({ heartbeatTimeoutMs: 300 });
  const beats: any[] = [];
  env.on('heartbeat', (d: unknown) => beats.push(d));
  const run = env.run(() => runTool(bin, [], { timeoutMs: 60_000, killGraceMs: 1_000 }));
  const pids = await started(pidFile);
  await new Promise((r) => setTimeout(r, 700));
  env.cancel();
  const result = await run;
  expect(result).toMatchObject({ cancelled: true });
  await allGone(pids, 3_000);
  // Every 100 ms (a third of 300 ms) for at least 0.7 s.
  expect(beats.length).toBeGreaterThanOrEqual(5);
  expect(beats[beats.length - 1]).toMatchObject({ tool: `tool-${n}`, elapsedMs: expect.any(Number), lastLine: 'children started' });
});

test('a worker killed with SIGKILL takes its running tool with it (no orphaned helm or trivy)', async () => {
  // A worker process runs a long tool; then the worker is killed as kill -9 would. The worker loads exec.ts
  // transpiled here (not dist/, which only a build writes), resolving its imports from the project's node_modules.
  const { spawn } = await import('node:child_process');
  const exec = transpiled(join(__dirname, '..', '..', 'activities', 'exec.ts'));
  const worker = spawn(process.execPath, ['-e', `const { runTool } = require(${JSON.stringify(exec)}); const p = runTool('/bin/sleep', ['1000'], { timeoutMs: 600000 }); setInterval(() => {}, 1000); p.then(() => process.exit(0));`], { stdio: 'ignore', env: { ...process.env, NODE_PATH: join(__dirname, '..', '..', 'node_modules') } });
  let tool: number | undefined;
  await waitUntil(() => {
    // The tool is the worker's child: /proc/<pid>/stat field 4 is the parent pid.
    const { readdirSync, readFileSync } = require('node:fs') as typeof import('node:fs');
    for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === worker.pid && /\(sleep\)/.test(stat)) tool = Number(d);
      } catch {
        /* gone */
      }
    }
    return tool !== undefined;
  }, 10_000, 'the worker started its tool');
  worker.kill('SIGKILL');
  await allGone([tool!], 5_000);
});
