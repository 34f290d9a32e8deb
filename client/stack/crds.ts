/**
 * What the stack's CRD-carrying components (the router's Gateway API / Istio CRDs, Flux's) share: the API clients
 * of one local cluster, and registering CRD files idempotently.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from './process';

const MANAGED = { 'app.kubernetes.io/managed-by': 'slipway' };

/** The API clients of one context of a kubeconfig (loaded lazily: `stack down` needs none of them). */
export async function stackClients(kubeconfig: string, context: string) {
  const { k8s } = await import('../../activities/kubernetes/client');
  const { KubeCluster } = await import('../../activities/kubernetes/cluster');
  const cluster = KubeCluster.forKubeconfig(kubeconfig);
  return {
    k8s,
    core: cluster.api(context, k8s.CoreV1Api),
    crds: cluster.api(context, k8s.ApiextensionsV1Api),
    custom: cluster.api(context, k8s.CustomObjectsApi),
  };
}

/** The `.yaml` files of `crdDir`'s subdirectories, in a stable order (a missing subdirectory has none). */
export function crdFiles(crdDir: string, subdirs: readonly string[]): string[] {
  return subdirs.flatMap((sub) => {
    const d = join(crdDir, sub);
    return existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.yaml')).sort().map((f) => join(d, f)) : [];
  });
}

/**
 * Registers CRD files on `context`: a CRD is replaced whole (not merged) when its file changed — a new pinned version,
 * or a stand-in an older stack registered — and left alone otherwise; returns the names created or replaced, once
 * each is established (served a moment after it is stored, and the objects that use it come next).
 */
export async function applyCrds(kubeconfig: string, context: string, files: readonly string[]): Promise<string[]> {
  const { k8s, crds } = await stackClients(kubeconfig, context);
  const { isHttp } = await import('../../activities/kubernetes/cluster');
  const changed: string[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const source = createHash('sha256').update(text).digest('hex').slice(0, 16);
    // loadYaml deserialises into the typed model, so x-kubernetes-* schema keys survive client-node's serialiser.
    const crd = k8s.loadYaml<import('@kubernetes/client-node').V1CustomResourceDefinition>(text);
    const name = crd.metadata!.name!;
    crd.metadata!.annotations = { ...crd.metadata!.annotations, 'slipway.dev/crd-source': source };
    crd.metadata!.labels = { ...crd.metadata!.labels, ...MANAGED };
    const existing = await crds.readCustomResourceDefinition({ name }).catch((err) => {
      if (isHttp(err, 404)) return undefined;
      throw err;
    });
    if (existing?.metadata?.annotations?.['slipway.dev/crd-source'] === source) continue;
    if (existing) {
      crd.metadata!.resourceVersion = existing.metadata!.resourceVersion;
      await crds.replaceCustomResourceDefinition({ name, body: crd });
    } else {
      await crds.createCustomResourceDefinition({ body: crd });
    }
    changed.push(name);
  }
  for (const name of changed) {
    await waitFor(`CRD ${name} established on ${context}`, async () => {
      const c = await crds.readCustomResourceDefinition({ name });
      return Boolean(c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True'));
    }, 30_000);
  }
  return changed;
}
