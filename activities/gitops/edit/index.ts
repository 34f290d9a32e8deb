/**
 * One editor per gitops format, chosen by the delivery section's `format.type`. Each is pure (text in, text out),
 * keeps comments and layout, and is idempotent: pinning the digest a file already pins returns it unchanged.
 */
import type { GitopsFormat } from '../../../model/gitops';
import { editHelmRelease } from './helm-release';
import { editKustomization } from './kustomize';
import { editManifest } from './manifest';
import type { EditResult } from './yaml';

export type { EditResult } from './yaml';

/** The image a release pins: repository (no tag), digest, and the version as a tag where the format keeps one. */
export interface ImagePin {
  repository: string;
  digest: string;
  tag?: string;
}

/** The file an edit applies to: kustomize's path may name the overlay directory. */
export function fileFor(format: GitopsFormat, path: string): string {
  if (format.type === 'kustomize' && !/\.ya?ml$/.test(path)) return `${path.replace(/\/+$/, '')}/kustomization.yaml`;
  return path;
}

export function editFile(format: GitopsFormat, text: string, pin: ImagePin, where: { repository: string; file: string }): EditResult {
  switch (format.type) {
    case 'kustomize':
      return editKustomization(text, pin, format, where);
    case 'helm-release':
      return editHelmRelease(text, pin, format, where);
    case 'manifest':
      return editManifest(text, pin, format, where);
  }
}
