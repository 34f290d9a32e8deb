/**
 * Flux HelmRelease: `spec.values.<repositoryKey>` and `spec.values.<digestKey>` (default image.repository and
 * image.digest, the layout a `helm create` chart extended with a digest reads), and `<tagKey>` when configured.
 * The repository key must already be there: it proves the file has the layout the configuration says (a typo in
 * a key would otherwise add a value no chart reads); the digest and tag keys are added when missing.
 */
import { isMap } from 'yaml';
import { gitopsError } from '../errors';
import { applyEdits, digestOf, parseDocuments, scalarAt, type EditResult } from './yaml';
import type { ImagePin } from './index';

export interface HelmReleaseKeys {
  name?: string;
  repositoryKey: string;
  digestKey: string;
  tagKey?: string;
}

export function editHelmRelease(text: string, pin: ImagePin, keys: HelmReleaseKeys, where: { repository: string; file: string }): EditResult {
  const docs = parseDocuments(text, where.file);
  const releases = docs.filter((d) => isMap(d.contents) && d.get('kind') === 'HelmRelease' && String(d.get('apiVersion') ?? '').startsWith('helm.toolkit.fluxcd.io/'));
  const matching = keys.name ? releases.filter((d) => d.getIn(['metadata', 'name']) === keys.name) : releases;
  const missing = (what: string) => gitopsError('entry-missing', where.repository, `${where.file} ${what}`, { file: where.file });
  if (matching.length === 0) throw missing(keys.name ? `has no HelmRelease named ${keys.name}` : 'has no HelmRelease (helm.toolkit.fluxcd.io)');
  if (matching.length > 1) throw missing(`has ${matching.length} HelmReleases: set format.name to say which`);
  const doc = matching[0];
  const values = (key: string) => ['spec', 'values', ...key.split('.')];
  if (!scalarAt(doc, values(keys.repositoryKey))) throw missing(`has no spec.values.${keys.repositoryKey} in HelmRelease ${doc.getIn(['metadata', 'name'])} (format.repositoryKey)`);
  const edits = [
    { doc, path: values(keys.repositoryKey), value: pin.repository },
    { doc, path: values(keys.digestKey), value: pin.digest },
    ...(keys.tagKey && pin.tag ? [{ doc, path: values(keys.tagKey), value: pin.tag }] : []),
  ];
  return { ...applyEdits(text, docs, edits), previousDigest: digestOf(doc.getIn(values(keys.digestKey))) };
}
