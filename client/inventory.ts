/**
 * `slipway inventory`: what runs where, read from the clusters themselves — the labels and annotations every deploy
 * writes (app.kubernetes.io/*, slipway.dev/owner, release, digest) — not from slipway's own records.
 */
import type { Cluster } from '../activities/ports';
import type { SlipwayConfig } from '../model/config';

export interface InventoryRow {
  environment: string;
  context: string;
  namespace: string;
  service: string;
  version?: string;
  digest?: string;
  owner?: string;
  release?: string;
  image?: string;
  ready: string;
}

export interface InventoryProblem {
  environment: string;
  error: string;
}

export async function readInventory(cfg: SlipwayConfig, cluster: Cluster): Promise<{ rows: InventoryRow[]; problems: InventoryProblem[] }> {
  const rows: InventoryRow[] = [];
  const problems: InventoryProblem[] = [];
  for (const [environment, env] of Object.entries(cfg.environments)) {
    if (!env.kubeContext || !env.namespace) continue;
    const target = { context: env.kubeContext, namespace: env.namespace };
    try {
      for (const w of await cluster.workloads(target, 'app.kubernetes.io/part-of=slipway')) {
        const a = w.annotations;
        rows.push({
          environment,
          ...target,
          service: w.labels['app.kubernetes.io/instance'] ?? w.name,
          version: w.labels['app.kubernetes.io/version'],
          digest: a['slipway.dev/digest'],
          owner: a['slipway.dev/owner'],
          release: a['slipway.dev/release'],
          image: w.image,
          ready: `${w.ready}/${w.replicas}`,
        });
      }
    } catch (err) {
      // One unreachable cluster must not hide the others.
      problems.push({ environment, error: (err as Error).message });
    }
  }
  return { rows, problems };
}

export function renderInventory(inv: { rows: InventoryRow[]; problems: InventoryProblem[] }): string {
  const lines = inv.rows.map((r) =>
    [r.environment.padEnd(8), r.service.padEnd(14), (r.version ?? '?').padEnd(22), (r.digest ?? '?').slice(0, 19).padEnd(20), (r.owner ?? '?').padEnd(10), r.ready.padEnd(6), `${r.context}/${r.namespace}`].join(' '),
  );
  if (lines.length) lines.unshift(['ENV'.padEnd(8), 'SERVICE'.padEnd(14), 'VERSION'.padEnd(22), 'DIGEST'.padEnd(20), 'OWNER'.padEnd(10), 'READY'.padEnd(6), 'WHERE'].join(' '));
  for (const p of inv.problems) lines.push(`${p.environment}: cannot read: ${p.error}`);
  return lines.join('\n') || '(nothing deployed)';
}
