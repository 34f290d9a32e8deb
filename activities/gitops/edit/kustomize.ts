/**
 * Kustomize overlay: the `images:` entry for the service's image gets `digest: sha256:…` (and `newName` when the
 * environment's repository differs from the name the base manifests use, `newTag` when the entry has one).
 */
import { isMap, isSeq } from 'yaml';
import { gitopsError } from '../errors';
import { applyEdits, digestOf, parseDocuments, type EditResult, type YamlEdit } from './yaml';
import type { ImagePin } from './index';

export function editKustomization(text: string, pin: ImagePin, opts: { imageName?: string }, where: { repository: string; file: string }): EditResult {
  const docs = parseDocuments(text, where.file);
  const doc = docs[0];
  const name = opts.imageName ?? pin.repository;
  const images = doc?.get('images', true);
  const entries = isSeq(images) ? images.items : [];
  const index = entries.findIndex((e) => isMap(e) && (e.get('name') === name || e.get('newName') === pin.repository));
  if (index < 0) {
    throw gitopsError('entry-missing', where.repository, `${where.file} has no images: entry named ${name}${name !== pin.repository ? ` or with newName ${pin.repository}` : ''} (add one: - name: ${name})`, { file: where.file, image: name });
  }
  const entry = entries[index] as import('yaml').YAMLMap;
  const at = (key: string) => ['images', index, key];
  const edits: YamlEdit[] = [{ doc, path: at('digest'), value: pin.digest }];
  if (entry.get('name') !== pin.repository) edits.push({ doc, path: at('newName'), value: pin.repository });
  if (pin.tag && entry.has('newTag')) edits.push({ doc, path: at('newTag'), value: pin.tag });
  return { ...applyEdits(text, docs, edits), previousDigest: digestOf(entry.get('digest')) };
}
