/**
 * Helm charts as OCI artifacts (the layout `helm push` writes: a chart config blob and one chart-content layer),
 * pushed and pulled through slipway's own OCI client so Helm never needs registry credentials, and pulled by
 * digest so the chart deployed is byte for byte the chart that was packaged and tested.
 */
import { createHash } from 'node:crypto';
import { toRegistryFailure } from './oci';
import type { OciRegistryClient } from './oci-client';
import { DigestMismatchError, RegistryHttpError, sha256 } from './oci-client';

export const HELM_CONFIG_MEDIA_TYPE = 'application/vnd.cncf.helm.config.v1+json';
export const HELM_CHART_MEDIA_TYPE = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

/** Failures in the shared vocabulary (a 401 on the chart push is as final as one on the image copy). */
export async function pushChart(...args: Parameters<typeof pushChartRaw>): ReturnType<typeof pushChartRaw> {
  return pushChartRaw(...args).catch((err) => Promise.reject(toRegistryFailure(err, `push chart ${args[0].endpoint.host}/${args[1]}:${args[2]}`)));
}

export async function pullChart(...args: Parameters<typeof pullChartRaw>): ReturnType<typeof pullChartRaw> {
  return pullChartRaw(...args).catch((err) => Promise.reject(toRegistryFailure(err, `pull chart ${args[0].endpoint.host}/${args[1]}@${args[2]}`)));
}

async function pushChartRaw(
  client: OciRegistryClient,
  repository: string,
  tag: string,
  chart: { tgz: Buffer; name: string; version: string; appVersion: string },
): Promise<{ digest: string; size: number }> {
  const config = Buffer.from(JSON.stringify({ name: chart.name, version: chart.version, appVersion: chart.appVersion, apiVersion: 'v2' }));
  const blobs = [
    { mediaType: HELM_CONFIG_MEDIA_TYPE, bytes: config },
    { mediaType: HELM_CHART_MEDIA_TYPE, bytes: chart.tgz },
  ].map((b) => ({ ...b, digest: sha256(b.bytes) }));
  for (const b of blobs) {
    if (!(await client.hasBlob(repository, b.digest))) await client.uploadBlob(repository, b.digest, b.bytes.length, () => b.bytes);
  }
  const [cfg, layer] = blobs;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: cfg.mediaType, digest: cfg.digest, size: cfg.bytes.length },
      layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.bytes.length, annotations: { 'org.opencontainers.image.title': `${chart.name}-${chart.version}.tgz` } }],
      annotations: { 'org.opencontainers.image.title': chart.name, 'org.opencontainers.image.version': chart.version },
    }),
  );
  const digest = await client.putManifest(repository, tag, { bytes: manifest, mediaType: OCI_MANIFEST, digest: sha256(manifest), json: undefined });
  return { digest, size: chart.tgz.length };
}

/** Fetches a chart by manifest digest and checks every digest on the way. */
async function pullChartRaw(client: OciRegistryClient, repository: string, digest: string): Promise<Buffer> {
  const m = await client.getManifest(repository, digest);
  if (m.digest !== digest) throw new DigestMismatchError(`chart manifest ${repository}@${digest} has digest ${m.digest}`, digest, m.digest);
  const layer = (m.json.layers ?? []).find((l: { mediaType?: string }) => l.mediaType === HELM_CHART_MEDIA_TYPE);
  if (!layer) throw new RegistryHttpError(`${repository}@${digest} is not a Helm chart (no ${HELM_CHART_MEDIA_TYPE} layer)`, 415);
  const res = await client.getBlob(repository, layer.digest);
  const bytes = Buffer.from(await res.arrayBuffer());
  const actual = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  if (actual !== layer.digest) throw new DigestMismatchError(`chart layer of ${repository}@${digest} has digest ${actual}, manifest says ${layer.digest}`, layer.digest, actual);
  return bytes;
}
