/**
 * Chaos sample (the whole matrix is `npm run chaos`, bench/chaos.ts): the worker process group is killed with
 * SIGKILL at a few seeded kill points — stage boundaries and random moments inside build, scan, push, chart,
 * deploys and promotion — and restarted each time. The release completes or fails cleanly, with no step done
 * twice (Helm revisions, completed activities, a second digest under a tag) and no orphaned tool process.
 * SLIPWAY_CHAOS_SEED reproduces a run; the seed is printed.
 */
import { chaosContext, chaosRelease, chaosSeed, KILL_POINTS, matrixRounds, pointName, samplePoints, seededRandom, summarize, type ChaosContext } from '../../bench/chaos';
import { testStack } from '../setup/stack-info';

const seed = chaosSeed();
const POINTS = 3;
let ctx: ChaosContext & { close: () => Promise<void> };
const lines: string[] = [];

beforeAll(async () => {
  ctx = await chaosContext(testStack(), (l) => lines.push(l));
});
afterAll(async () => {
  await ctx?.close();
  process.stdout.write(`${lines.join('\n')}\n`);
});

test(`kill -9 at ${POINTS} seeded points (seed ${seed}): the release ends cleanly, nothing done twice, no orphaned tool`, async () => {
  const rand = seededRandom(seed);
  const points = samplePoints(rand, POINTS);
  lines.push(`chaos seed ${seed}: ${points.map(pointName).join(', ')}`);
  const report = await chaosRelease(ctx, points, rand);
  lines.push(summarize(seed, [report]));
  expect(report.kills).toBeGreaterThanOrEqual(1);
  expect({ phase: report.phase, clean: report.completedCleanly }).toEqual({ phase: 'succeeded', clean: true });
  expect(report.duplicates).toEqual([]);
  // No tool outlives the worker that started it (exec.ts has the kernel kill it with its worker).
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
