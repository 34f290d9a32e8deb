/**
 * The pod sandbox (pause) image of the real node. Nothing can be pulled here, so slipway's own static `pause` binary
 * (tools/kubelet/cmd/pause, built by tools/kube/build.sh from tools/kubelet) is packed into a one-layer image and pushed straight to
 * the local registry through the OCI client — no Docker needed. containerd's `sandbox_image` names it.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvCredentialStore } from '../../activities/registry/credentials';
import { OciRegistryClient, sha256, type Manifest } from '../../activities/registry/oci-client';
import { findBinary, slipwayHome } from './process';

export const PAUSE_REPOSITORY = 'slipway/pause';
export const PAUSE_TAG = '3.10-slipway';

export interface RegistryLogin {
  url: string;
  username: string;
  password: string;
}

export function pauseBinary(): string {
  const own = join(slipwayHome(), 'bin', 'pause');
  const p = existsSync(own) ? own : findBinary('pause');
  if (!p) throw new Error('the real node needs the pause binary: run scripts/install.sh (tools/kube/build.sh builds it from tools/kubelet)');
  return p;
}

/** Pushes the pause image unless the tag is already there; returns `host/repo:tag` for containerd's sandbox_image. */
export async function ensurePauseImage(registry: RegistryLogin): Promise<string> {
  const name = 'slipway-pause';
  const env = { SLIPWAY_REGISTRY_SLIPWAY_PAUSE_USERNAME: registry.username, SLIPWAY_REGISTRY_SLIPWAY_PAUSE_PASSWORD: registry.password };
  const client = new OciRegistryClient({ host: registry.url, name, insecure: true }, new EnvCredentialStore(env, '/nonexistent'));
  const ref = `${registry.url}/${PAUSE_REPOSITORY}:${PAUSE_TAG}`;
  if (await client.manifestDigest(PAUSE_REPOSITORY, PAUSE_TAG)) return ref;

  const root = mkdtempSync(join(tmpdir(), 'slipway-pause-'));
  try {
    copyFileSync(pauseBinary(), join(root, 'pause'));
    // Fixed owner and mtime so the same binary always gives the same layer digest.
    const layer = execFileSync('tar', ['-C', root, '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0', '-c', 'pause'], { maxBuffer: 64 * 1024 * 1024 });
    const layerDigest = sha256(layer);
    const config = Buffer.from(JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Entrypoint: ['/pause'], User: '65535:65535' },
      rootfs: { type: 'layers', diff_ids: [layerDigest] },
    }));
    for (const blob of [config, layer]) {
      const digest = sha256(blob);
      if (!(await client.hasBlob(PAUSE_REPOSITORY, digest))) await client.uploadBlob(PAUSE_REPOSITORY, digest, blob.length, () => blob);
    }
    const json = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length }],
    };
    const bytes = Buffer.from(JSON.stringify(json));
    const manifest: Manifest = { bytes, mediaType: json.mediaType, digest: sha256(bytes), json };
    await client.putManifest(PAUSE_REPOSITORY, PAUSE_TAG, manifest);
    return ref;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
