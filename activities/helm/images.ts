/**
 * "By digest" has to hold for whatever chart a team brings: the release's image goes into the chart values under the
 * paths the chart reads (the common `image.repository`/`image.tag`/`image.digest` layout, or a mapping from
 * slipway.yaml), and the rendered manifests are checked to run exactly that digest before anything is deployed.
 */
import { parseAllDocuments } from 'yaml';
import type { ImageValues } from '../../model/types';
import { parseImageRef } from '../../model/identifiers';

/**
 * The common layouts at once: `helm create` charts render `repository:tag` (tag = `<version>@<digest>` keeps the
 * digest in that reference), charts that read `image.digest` render `repository@digest`.
 */
export const DEFAULT_IMAGE_VALUES: ImageValues = { repository: 'image.repository', tag: 'image.tag', digest: 'image.digest' };

export interface ReleaseImage {
  /** host[:port]/path, e.g. 127.0.0.1:5000/prod/delivery */
  repository: string;
  digest: string;
  version: string;
}

/** The value each mapped path gets: the tag carries the digest too, so a `repository:tag` template is pinned. */
export function imageValueEntries(layout: ImageValues, image: ReleaseImage): [string, string][] {
  const entries: [string, string][] = [];
  if (layout.registry) {
    const slash = image.repository.indexOf('/');
    entries.push([layout.registry, image.repository.slice(0, slash)], [layout.repository, image.repository.slice(slash + 1)]);
  } else {
    entries.push([layout.repository, image.repository]);
  }
  if (layout.tag) entries.push([layout.tag, `${image.version}@${image.digest}`]);
  if (layout.digest) entries.push([layout.digest, image.digest]);
  return entries;
}

/** `values` with every mapped path set (deep, without touching siblings); the input is not modified. */
export function withImageValues(values: Record<string, unknown>, layout: ImageValues, image: ReleaseImage): Record<string, unknown> {
  const out = structuredClone(values);
  for (const [path, value] of imageValueEntries(layout, image)) {
    const keys = path.split('.');
    let node: Record<string, unknown> = out;
    for (const k of keys.slice(0, -1)) {
      const next = node[k];
      if (!next || typeof next !== 'object' || Array.isArray(next)) node[k] = {};
      node = node[k] as Record<string, unknown>;
    }
    node[keys.at(-1)!] = value;
  }
  return out;
}

export interface RenderedContainer {
  kind: string;
  name: string;
  container: string;
  init: boolean;
  image: string;
}

/** Where each workload kind keeps its pod spec. */
const POD_SPEC_PATHS: Record<string, string[]> = {
  Pod: ['spec'],
  Deployment: ['spec', 'template', 'spec'],
  StatefulSet: ['spec', 'template', 'spec'],
  DaemonSet: ['spec', 'template', 'spec'],
  ReplicaSet: ['spec', 'template', 'spec'],
  Job: ['spec', 'template', 'spec'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
};

/** Every container and init container of every workload in a multi-document manifest (`helm template` output). */
export function renderedContainers(manifests: string): RenderedContainer[] {
  const out: RenderedContainer[] = [];
  for (const doc of parseAllDocuments(manifests)) {
    if (doc.errors.length) throw new Error(`the rendered chart is not valid YAML: ${doc.errors[0].message}`);
    const obj = doc.toJS() as { kind?: string; metadata?: { name?: string } } | null;
    const path = obj?.kind ? POD_SPEC_PATHS[obj.kind] : undefined;
    if (!obj || !path) continue;
    let spec: any = obj;
    for (const k of path) spec = spec?.[k];
    for (const [list, init] of [['initContainers', true], ['containers', false]] as const) {
      for (const c of (spec?.[list] ?? []) as { name?: string; image?: unknown }[]) {
        out.push({ kind: obj.kind!, name: String(obj.metadata?.name ?? '?'), container: String(c?.name ?? '?'), init, image: String(c?.image ?? '') });
      }
    }
  }
  return out;
}

/**
 * Why the rendered chart does not run exactly `image.repository@image.digest`, one line per problem (empty when it
 * does). Containers of other repositories (a test hook's busybox) are not slipway's to pin; but at least one
 * container must run the service's repository, or the chart ignores the values slipway sets.
 */
export function pinningProblems(containers: RenderedContainer[], image: ReleaseImage, layout: ImageValues): string[] {
  const entries = imageValueEntries(layout, image);
  const set = entries.map(([p, v]) => `${p}=${v}`).join(', ');
  // Which of slipway's values ended up in an image, inferred from the rendered text: what the chart reads.
  const reads = (ref: string) => {
    const used = entries.filter(([, v]) => ref.includes(v)).map(([p]) => p);
    return used.length ? `it reads ${used.join(', ')}` : `it reads none of ${entries.map(([p]) => p).join(', ')}`;
  };
  const where = (c: RenderedContainer) => `${c.init ? 'init container' : 'container'} "${c.container}" of ${c.kind}/${c.name}`;
  const problems: string[] = [];
  const ours = containers.filter((c) => parseImageRef(c.image).name === image.repository);
  for (const c of ours) {
    const ref = parseImageRef(c.image);
    if (ref.digest !== image.digest) {
      problems.push(`${where(c)} runs "${c.image}" (${ref.digest ? `digest ${ref.digest}` : 'a tag, no digest'}; ${reads(c.image)})`);
    }
  }
  if (!ours.length) {
    const others = containers.map((c) => `${where(c)} runs "${c.image}" (${reads(c.image)})`);
    problems.push(`no container runs ${image.repository}${others.length ? `: ${others.join('; ')}` : ' (the chart renders no workload)'}`);
  }
  if (problems.length) problems.push(`slipway set ${set}: make the chart's image read them, or map its own value paths in services.<service>.chart.imageValues`);
  return problems;
}
