/**
 * Statistics for the canary judge, pure and deterministic (usable inside workflow code): average ranks, the
 * Mann-Whitney confidence interval and location estimate as Kayenta computes them (normal approximation with
 * continuity and ties correction; roots found with R's zeroin, tolerance 1e-4 — it reproduces Kayenta's roots of these
 * step functions exactly, where other Brent variants land elsewhere within the tolerance),
 * effect sizes and IQR outlier detection.
 */

/** Ranks with ties given their average rank (1-based). */
export function averageRanks(values: number[]): number[] {
  const order = values.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const ranks = new Array<number>(values.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    const rank = (i + j + 2) / 2;
    for (let k = i; k <= j; k++) ranks[order[k][1]] = rank;
    i = j + 1;
  }
  return ranks;
}

/** Kayenta's wilcoxonDiff: the standardised rank-sum statistic of (x - mu) against y, minus the quantile. */
export function wilcoxonDiff(mu: number, quantile: number, x: number[], y: number[]): number {
  const nx = x.length;
  const ny = y.length;
  const ranks = averageRanks([...x.map((v) => v - mu), ...y]);
  const ties = new Map<number, number>();
  for (const r of ranks) ties.set(r, (ties.get(r) ?? 0) + 1);
  let rankSumX = 0;
  for (let i = 0; i < nx; i++) rankSumX += ranks[i];
  const dz = rankSumX - (nx * (nx + 1)) / 2 - (nx * ny) / 2;
  const correction = Math.sign(dz) * 0.5;
  let tieTerm = 0;
  for (const t of ties.values()) tieTerm += t ** 3 - t;
  const sigma = Math.sqrt(((nx * ny) / 12) * (nx + ny + 1 - tieTerm / ((nx + ny) * (nx + ny - 1))));
  if (sigma === 0) throw new Error('cannot compute confidence interval when all observations are tied');
  return (dz - correction) / sigma - quantile;
}

/** Inverse of the standard normal CDF (Wichura's AS241, accurate to about 1e-16). */
export function normalQuantile(p: number): number {
  if (p <= 0 || p >= 1) throw new Error(`normalQuantile: p must be in (0, 1), got ${p}`);
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) {
    const r = 0.180625 - q * q;
    return (
      (q *
        (((((((r * 2509.0809287301226727 + 33430.575583588128105) * r + 67265.770927008700853) * r + 45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r + 133.14166789178437745) * r +
          3.387132872796366608)) /
      (((((((r * 5226.495278852545925 + 28729.085735721942674) * r + 39307.89580009271061) * r + 21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r + 42.313330701600911252) * r + 1)
    );
  }
  let r = q < 0 ? p : 1 - p;
  r = Math.sqrt(-Math.log(r));
  let val: number;
  if (r <= 5) {
    r -= 1.6;
    val =
      (((((((r * 7.7454501427834140764e-4 + 0.0227238449892691845833) * r + 0.24178072517745061177) * r + 1.27045825245236838258) * r + 3.64784832476320460504) * r + 5.7694972214606914055) * r + 4.6303378461565452959) * r +
        1.42343711074968357734) /
      (((((((r * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r + 0.14810397642748007459) * r + 0.68976733498510000455) * r + 1.6763848301838038494) * r + 2.05319162663775882187) * r + 1);
  } else {
    r -= 5;
    val =
      (((((((r * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r + 0.026532189526576123093) * r + 0.29656057182850489123) * r + 1.7848265399172913358) * r + 5.4637849111641143699) * r +
        6.6579046435011037772) /
      (((((((r * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r + 7.868691311456132591e-4) * r + 0.0148753612908506148525) * r + 0.13692988092273580531) * r + 0.59983220655588793769) * r + 1);
  }
  return q < 0 ? -val : val;
}

/** R's zeroin (R_zeroin2, as behind uniroot): Brent's method from the bracket [ax, bx], tolerance `tol`. */
export function zeroin(f: (x: number) => number, ax: number, bx: number, tol = 1e-4, maxit = 1000): number {
  const EPSILON = 2.220446049250313e-16;
  let a = ax;
  let b = bx;
  let fa = f(a);
  let fb = f(b);
  let c = a;
  let fc = fa;
  if (fa === 0) return a;
  if (fb === 0) return b;
  for (let it = 0; it <= maxit; it++) {
    const prevStep = b - a;
    if (Math.abs(fc) < Math.abs(fb)) {
      a = b;
      b = c;
      c = a;
      fa = fb;
      fb = fc;
      fc = fa;
    }
    const tolAct = 2 * EPSILON * Math.abs(b) + tol / 2;
    let newStep = (c - b) / 2;
    if (Math.abs(newStep) <= tolAct || fb === 0) return b;
    if (Math.abs(prevStep) >= tolAct && Math.abs(fa) > Math.abs(fb)) {
      let p: number;
      let q: number;
      const cb = c - b;
      if (a === c) {
        const t1 = fb / fa;
        p = cb * t1;
        q = 1 - t1;
      } else {
        q = fa / fc;
        const t1 = fb / fc;
        const t2 = fb / fa;
        p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1));
        q = (q - 1) * (t1 - 1) * (t2 - 1);
      }
      if (p > 0) q = -q;
      else p = -p;
      if (p < 0.75 * cb * q - Math.abs(tolAct * q) / 2 && p < Math.abs((prevStep * q) / 2)) newStep = p / q;
    }
    if (Math.abs(newStep) < tolAct) newStep = newStep > 0 ? tolAct : -tolAct;
    a = b;
    fa = fb;
    b += newStep;
    fb = f(b);
    if ((fb > 0 && fc > 0) || (fb < 0 && fc < 0)) {
      c = a;
      fc = fa;
    }
  }
  throw new Error(`root finding did not converge in ${maxit} iterations`);
}

export interface MannWhitneyResult {
  lowerConfidence: number;
  upperConfidence: number;
  estimate: number;
}

/** Confidence interval and estimate of the location shift x − y (Kayenta's mannWhitneyUTest). */
export function mannWhitney(x: number[], y: number[], confidenceLevel: number): MannWhitneyResult {
  const alpha = 1 - confidenceLevel;
  const muMin = Math.min(...x) - Math.max(...y);
  const muMax = Math.max(...x) - Math.min(...y);
  const root = (zq: number) => {
    const f = (mu: number) => wilcoxonDiff(mu, zq, x, y);
    if (f(muMin) <= 0) return muMin;
    if (f(muMax) >= 0) return muMax;
    return zeroin(f, muMin, muMax);
  };
  const zq = normalQuantile(alpha / 2);
  return {
    lowerConfidence: root(-zq),
    upperConfidence: root(zq),
    estimate: zeroin((mu) => wilcoxonDiff(mu, 0, x, y), muMin, muMax),
  };
}

export const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** mean(experiment) / mean(control); NaN when either mean is 0. */
export function meanRatio(control: number[], experiment: number[]): number {
  const c = mean(control);
  const e = mean(experiment);
  return c === 0 || e === 0 ? NaN : e / c;
}

/** Common-language effect size: the probability that an experiment value exceeds a control value. */
export function cles(control: number[], experiment: number[]): number {
  const m = experiment.length;
  const n = control.length;
  const ranks = averageRanks([...experiment, ...control]);
  let r1 = 0;
  for (let i = 0; i < m; i++) r1 += ranks[i];
  return (2 * r1 - m * (m + 1)) / (2 * n * m);
}

/** R-7 (linear interpolation) quantile of sorted values. */
export function quantile7(sorted: number[], p: number): number {
  const h = (sorted.length - 1) * p;
  const lo = Math.floor(h);
  return sorted[lo] + (h - lo) * ((sorted[Math.min(lo + 1, sorted.length - 1)] ?? sorted[lo]) - sorted[lo]);
}

/** Which values lie outside [Q1 − factor·IQR, Q3 + factor·IQR]. */
export function iqrOutliers(values: number[], factor = 1.5): boolean[] {
  if (values.length === 0) return [];
  const sorted = [...values].sort((a, b) => a - b);
  const q1 = quantile7(sorted, 0.25);
  const q3 = quantile7(sorted, 0.75);
  const iqr = q3 - q1;
  return values.map((v) => v < q1 - factor * iqr || v > q3 + factor * iqr);
}
