/**
 * Chaos sample (the whole matrix is `npm run chaos`, bench/chaos.ts): the worker process group is killed with
 * SIGKILL at a few seeded kill points — stage boundaries and random moments inside build, scan, push, chart,
 * deploys and promotion — and restarted each time. The release completes or fails cleanly, with no step done
 * twice (Helm revisions, completed activities, a second digest under a tag) and no orphaned tool process.
 * Then a canary release beside it, healthy or failing by the seed, is killed at seeded points inside its analysis
 * (weight set, measurement, promotion, rollback): it ends promoted or rolled back as its metrics say, with no canary
 * Deployment or Service left and production's Helm changed once or not at all.
 * SLIPWAY_CHAOS_SEED reproduces a run; the seed is printed.
 */
import {
  CANARY_KILL_POINTS,
  canaryRounds,
  chaosCanaryRelease,
  chaosContext,
  chaosRelease,
  chaosSeed,
  KILL_POINTS,
  removeNamespaces,
  matrixRounds,
  pointName,
  samplePoints,
  seededRandom,
  summarize,
  type ChaosContext,
  type ReleaseReport,
} from '../../bench/chaos';
import { CanaryTracks } from '../../bench/chaos-canary';
import { testStack } from '../setup/stack-info';

const seed = chaosSeed();
const POINTS = 3;
const CANARY_POINTS = 2;
let ctx: ChaosContext & { close: () => Promise<void> };
let tracks: CanaryTracks | undefined;
/** The first test's release: the stable one the canary runs beside. */
let first: ReleaseReport | undefined;
const lines: string[] = [];

beforeAll(async () => {
  ctx = await chaosContext(testStack(), (l) => lines.push(l));
});
const reports: ReleaseReport[] = [];
afterAll(async () => {
  await tracks?.stop();
  if (ctx) await removeNamespaces(ctx, reports);
  await ctx?.close();
  process.stdout.write(`${lines.join('\n')}\n`);
});

test(`kill -9 at ${POINTS} seeded points (seed ${seed}): the release ends cleanly, nothing done twice, no orphaned tool`, async () => {
  const rand = seededRandom(seed);
  const points = samplePoints(rand, POINTS);
  lines.push(`chaos seed ${seed}: ${points.map(pointName).join(', ')}`);
  const report = await chaosRelease(ctx, points, rand);
  first = report;
  reports.push(report);
  lines.push(summarize(seed, [report]));
  expect(report.kills).toBeGreaterThanOrEqual(1);
  expect({ phase: report.phase, clean: report.completedCleanly }).toEqual({ phase: 'succeeded', clean: true });
  expect(report.duplicates).toEqual([]);
  // No tool outlives the worker that started it (exec.ts has the kernel kill it with its worker).
  expect(report.orphans).toEqual([]);
}, 420_000);

test(`kill -9 at ${CANARY_POINTS} seeded points inside canary analysis (seed ${seed}): promoted or rolled back as its metrics say, nothing left behind`, async () => {
  expect(first?.phase).toBe('succeeded');
  // A generator of its own, so the first test's draws do not shift this one's.
  const rand = seededRandom((seed + 1) >>> 0);
  const rounds = canaryRounds();
  const round = rounds[Math.floor(rand() * rounds.length)];
  const points = samplePoints(rand, CANARY_POINTS, round.points);
  lines.push(`chaos seed ${seed}, ${round.metrics} canary: ${points.map(pointName).join(', ')}`);
  tracks = await CanaryTracks.start(ctx.stack.docker, ctx.workDir);
  const report = await chaosCanaryRelease(ctx, tracks, first!, round.metrics, points, rand);
  reports.push(report);
  lines.push(summarize(seed, [report]));
  expect(report.kills).toBeGreaterThanOrEqual(1);
  expect({ phase: report.phase, clean: report.completedCleanly }).toEqual({ phase: round.metrics === 'healthy' ? 'succeeded' : 'failed', clean: true });
  // The outcome the metrics call for, and the cluster as that outcome leaves it (no canary Deployment or Service).
  expect(report.problems).toEqual([]);
  expect(report.duplicates).toEqual([]);
  expect(report.orphans).toEqual([]);
}, 420_000);

test('a seed reproduces its kill points and delays; the matrix covers every point once', () => {
  const draw = (s: number) => {
    const r = seededRandom(s);
    return [samplePoints(r, POINTS).map(pointName), r()];
  };
  expect(draw(seed)).toEqual(draw(seed));
  expect(new Set(Array.from({ length: 20 }, (_, i) => JSON.stringify(draw(i)))).size).toBeGreaterThan(1);
  const rounds = matrixRounds(4);
  expect(rounds.flat().map(pointName).sort()).toEqual(KILL_POINTS.map(pointName).sort());
  // Each release takes its points in pipeline order.
  for (const r of rounds) expect(r.map((p) => KILL_POINTS.indexOf(p))).toEqual([...r.map((p) => KILL_POINTS.indexOf(p))].sort((a, b) => a - b));
  expect(() => chaosSeed({ SLIPWAY_CHAOS_SEED: 'abc' })).toThrow(/SLIPWAY_CHAOS_SEED must be an integer/);
});

test('the canary matrix: every canary point once, one release per kind of metrics, each in pipeline order', () => {
  const rounds = canaryRounds();
  expect(rounds.map((r) => r.metrics)).toEqual(['healthy', 'failing']);
  expect(rounds.flatMap((r) => r.points)).toEqual(CANARY_KILL_POINTS);
  for (const r of rounds) expect(r.points.every((p) => p.metrics === r.metrics)).toBe(true);
  // Names tell the points apart in the report (the same activity is a point of both releases).
  expect(new Set(CANARY_KILL_POINTS.map(pointName)).size).toBe(CANARY_KILL_POINTS.length);
  // At least: the weight being set, a measurement, promotion and a failing canary's rollback.
  const of = (m: string) => CANARY_KILL_POINTS.filter((p) => p.metrics === m && p.kind === 'inside').map((p) => (p.kind === 'inside' ? p.activity : ''));
  expect(of('healthy')).toEqual(expect.arrayContaining(['setCanaryWeight', 'measureCanary', 'deployChart', 'removeCanary']));
  expect(of('failing')).toEqual(expect.arrayContaining(['removeCanary', 'rollbackDeploy']));
  const r = seededRandom(7);
  expect(samplePoints(r, 2, rounds[1].points).every((p) => p.metrics === 'failing')).toBe(true);
});
