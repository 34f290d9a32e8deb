/**
 * `slipway gitops init` (client/gitops-init.ts): the layout parses as YAML, each overlay's images: entry is one the
 * project's kustomize editor pins a digest in (by newName, as a release's change does, and by the imageName the
 * printed delivery section names), the Flux objects point at the overlay, the printed delivery section is valid, and
 * nothing is ever written over an existing file.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { editFile } from '../../activities/gitops/edit';
import { main } from '../../client/cli';
import { gitopsLayout, writeScaffold } from '../../client/gitops-init';
import { parseGitopsDelivery } from '../../model/gitops';
import { parseConfig } from '../../model/plan';

const CONFIG = `
registries:
  dev: { type: oci, url: "127.0.0.1:5000", insecure: true }
environments:
  qa: { registry: dev, kubeContext: kwok-slipway-qa, namespace: delivery-qa }
  prod: { registry: dev, imagePrefix: prod/, kubeContext: kwok-slipway-prod, namespace: delivery }
services:
  delivery: { build: { context: services/delivery } }
`;
const DIGEST = `sha256:${'e'.repeat(64)}`;
const REPO = 'http://127.0.0.1:3000/slipway/environments.git';

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'slipway-gitops-init-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const layout = () => gitopsLayout(parseConfig(CONFIG), { service: 'delivery', environments: ['qa', 'prod'], repoUrl: REPO });

test('writes base, one overlay and one Flux file per environment, all valid YAML', () => {
  const written = writeScaffold(dir, layout().files);
  const rel = written.map((p) => p.slice(dir.length + 1)).sort();
  expect(rel).toEqual(['base/deployment.yaml', 'base/kustomization.yaml', 'base/service.yaml', 'flux/prod.yaml', 'flux/qa.yaml', 'overlays/prod/kustomization.yaml', 'overlays/qa/kustomization.yaml']);
  for (const p of written) {
    const text = readFileSync(p, 'utf8');
    // Plain YAML for people to edit: no anchors or aliases for the repeated labels.
    expect(text).not.toMatch(/[&*]a\d/);
    const docs = parseAllDocuments(text);
    expect(Array.isArray(docs) && docs.every((d) => d.errors.length === 0)).toBe(true);
  }
  const base = parse(readFileSync(join(dir, 'base/kustomization.yaml'), 'utf8'));
  expect(base.resources).toEqual(['deployment.yaml', 'service.yaml']);
  expect(parse(readFileSync(join(dir, 'base/deployment.yaml'), 'utf8')).spec.template.spec.containers[0].image).toBe('delivery');
  const flux = parseAllDocuments(readFileSync(join(dir, 'flux/prod.yaml'), 'utf8')).map((d) => d.toJS());
  expect(flux.map((d) => d.kind)).toEqual(['GitRepository', 'Kustomization']);
  expect(flux[0].spec.url).toBe(REPO);
  expect(flux[1].spec).toMatchObject({ path: './overlays/prod', sourceRef: { kind: 'GitRepository', name: flux[0].metadata.name } });
  expect(parse(readFileSync(join(dir, 'overlays/prod/kustomization.yaml'), 'utf8'))).toMatchObject({ namespace: 'delivery', resources: ['../../base'], images: [{ name: 'delivery', newName: '127.0.0.1:5000/prod/delivery' }] });
});

test("each overlay is one the kustomize editor pins a release's digest in", () => {
  const { files, delivery } = layout();
  for (const env of ['qa', 'prod']) {
    const file = `overlays/${env}/kustomization.yaml`;
    const text = files.find((f) => f.path === file)!.text;
    const repository = env === 'prod' ? '127.0.0.1:5000/prod/delivery' : '127.0.0.1:5000/delivery';
    const section = parseGitopsDelivery((delivery as Record<string, unknown>)[env]);
    expect(section.repository.path).toBe(`overlays/${env}`);
    for (const format of [section.format, { type: 'kustomize' as const }]) {
      const edited = editFile(format, text, { repository, digest: DIGEST, tag: 'v1.0.2' }, { repository: REPO, file });
      expect(edited.changed).toBe(true);
      expect(parse(edited.text).images).toEqual([{ name: 'delivery', newName: repository, digest: DIGEST }]);
      // The comment the scaffold wrote stays: the editor keeps the file as its authors wrote it.
      expect(edited.text).toContain('# delivery in');
    }
  }
});

test('refuses to overwrite: an existing file means nothing is written', () => {
  mkdirSync(join(dir, 'overlays/prod'), { recursive: true });
  writeFileSync(join(dir, 'overlays/prod/kustomization.yaml'), 'mine\n');
  expect(() => writeScaffold(dir, layout().files)).toThrow(/overlays\/prod\/kustomization\.yaml/);
  expect(readFileSync(join(dir, 'overlays/prod/kustomization.yaml'), 'utf8')).toBe('mine\n');
  expect(existsSync(join(dir, 'base'))).toBe(false);
});

test('unknown service or environment is a usage error', () => {
  expect(() => gitopsLayout(parseConfig(CONFIG), { service: 'nope', environments: ['qa'] })).toThrow(/--service/);
  expect(() => gitopsLayout(parseConfig(CONFIG), { service: 'delivery', environments: ['staging'] })).toThrow(/--environments: "staging"/);
});

test('the CLI command writes the layout, and a second run changes nothing (exit 2)', async () => {
  const cfg = join(dir, 'slipway.yaml');
  writeFileSync(cfg, CONFIG);
  const out = join(dir, 'env-repo');
  const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    expect(await main(['--config', cfg, '--json', 'gitops', 'init', '--service', 'delivery', '--environments', 'qa,prod', '--dir', out, '--repo-url', REPO])).toBe(0);
    const doc = JSON.parse(String(write.mock.calls.at(-1)![0]));
    expect(doc.written).toHaveLength(7);
    const before = readFileSync(join(out, 'flux/qa.yaml'), 'utf8');
    expect(await main(['--config', cfg, 'gitops', 'init', '--service', 'delivery', '--environments', 'qa', '--dir', out])).toBe(2);
    expect(readFileSync(join(out, 'flux/qa.yaml'), 'utf8')).toBe(before);
  } finally {
    write.mockRestore();
    err.mockRestore();
  }
});
