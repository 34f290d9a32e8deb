/** Chart packaging (on the builders, where the repository is checked out): refuse escaping symlinks, package, push by digest. */
import { readdirSync, readFileSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ErrorTypes } from '../../model/errors';
import { packageChartInputSchema } from '../../model/types';
import { check, resolveInside } from '../common';
import type { SlipwayActivities } from '../contract';
import { portError } from '../errors';
import type { Deployer } from '../ports';
import { pushChart } from '../registry/artifact';
import type { CredentialStore } from '../registry/credentials';
import { OciRegistryClient } from '../registry/oci-client';
import { guarded } from './guarded';
import { withTempDir } from './shared';

/**
 * The symlinks under a chart directory that resolve outside it (or nowhere), as "link -> target" lines. Helm
 * follows symlinks when it packages a chart (with only a warning), so a link to /etc/passwd or ../secrets would
 * ship that file inside the chart to every cluster. Links that stay inside the chart are only another name for
 * chart content and are allowed; directories reached through a link are not walked twice (their real location is).
 */
export function escapingSymlinks(chartDir: string): string[] {
  const root = realpathSync(chartDir);
  const bad: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, e.name);
      if (e.isSymbolicLink()) {
        const shown = `${relative(root, full)} -> ${readlinkSync(full)}`;
        let real: string;
        try {
          real = realpathSync(full);
        } catch {
          bad.push(`${shown} (points to nothing)`);
          continue;
        }
        const r = relative(root, real);
        if (r === '..' || r.startsWith(`..${sep}`) || isAbsolute(r)) bad.push(`${shown} (resolves to ${real}, outside the chart)`);
      } else if (e.isDirectory()) {
        walk(full);
      }
    }
  };
  walk(root);
  return bad;
}

export interface ChartDeps {
  deployer: Deployer;
  credentials: CredentialStore;
  workspace: string;
}

/** Runs where the repository is checked out (the builders). */
export function createChartActivities(deps: ChartDeps): Pick<SlipwayActivities, 'packageChart'> {
  return {
    async packageChart(raw) {
      const input = check(packageChartInputSchema, raw, 'packageChart');
      const dir = resolveInside(deps.workspace, input.chartPath, 'chart');
      if (!statSync(dir).isDirectory()) throw portError(ErrorTypes.InvalidInput, `chart "${input.chartPath}" is not a directory`);
      const meta = parseYaml(readFileSync(resolveInside(dir, 'Chart.yaml', 'Chart.yaml'), 'utf8')) as { name?: string };
      if (!meta?.name) throw portError(ErrorTypes.InvalidInput, `chart "${input.chartPath}": Chart.yaml has no name`);
      const links = escapingSymlinks(dir);
      if (links.length) {
        throw portError(ErrorTypes.InvalidInput, `chart "${input.chartPath}" has symlinks that leave the chart directory (Helm would package their targets):\n- ${links.join('\n- ')}`);
      }
      return withTempDir(async (out) => {
        // Chart version = app version = the release version: the chart in the registry is named like the image.
        const file = await guarded(() => deps.deployer.package(dir, input.version, out));
        const client = new OciRegistryClient({ host: input.registry.host, name: input.registry.name, insecure: input.registry.insecure }, deps.credentials);
        const pushed = await pushChart(client, input.repository, input.version, { tgz: readFileSync(file), name: meta.name!, version: input.version, appVersion: input.version });
        return {
          reference: `${input.registry.host}/${input.repository}@${pushed.digest}`,
          repository: input.repository,
          digest: pushed.digest,
          chart: meta.name!,
          version: input.version,
          size: pushed.size,
        };
      });
    },
  };
}
