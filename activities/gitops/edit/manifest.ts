/**
 * A plain manifest: every scalar whose trailing comment carries the marker (`image: … # slipway:image`) becomes
 * `<repository>[:<tag>]@<digest>`. Several marked lines (a Deployment and its Job) are all rewritten.
 */
import { isPair, isScalar, isSeq, visit, type Scalar } from 'yaml';
import { gitopsError } from '../errors';
import { applyEdits, digestOf, parseDocuments, type EditResult, type YamlEdit, type YamlPath } from './yaml';
import type { ImagePin } from './index';

export function editManifest(text: string, pin: ImagePin, opts: { marker: string }, where: { repository: string; file: string }): EditResult {
  const docs = parseDocuments(text, where.file);
  const value = `${pin.repository}${pin.tag ? `:${pin.tag}` : ''}@${pin.digest}`;
  const edits: YamlEdit[] = [];
  let previous: string | undefined;
  for (const doc of docs) {
    visit(doc, {
      Scalar(_key, node: Scalar, ancestry) {
        if (!node.comment || !node.comment.split(/\s+/).includes(opts.marker)) return;
        edits.push({ doc, path: pathOf(ancestry, node), value });
        previous ??= digestOf(node.value);
      },
    });
  }
  if (edits.length === 0) throw gitopsError('entry-missing', where.repository, `${where.file} has no line marked "# ${opts.marker}"`, { file: where.file, marker: opts.marker });
  return { ...applyEdits(text, docs, edits), previousDigest: previous };
}

/** The key path of a node from the visitor's ancestry (Document, maps, pairs and sequences down to the node). */
function pathOf(ancestry: readonly unknown[], node: unknown): YamlPath {
  const path: YamlPath = [];
  const chain = [...ancestry, node];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    if (isSeq(parent)) path.push(parent.items.indexOf(child));
    else if (isPair(parent) && parent.value === child) path.push(String(isScalar(parent.key) ? parent.key.value : parent.key));
  }
  return path;
}
