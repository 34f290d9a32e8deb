/**
 * The gitops editors (activities/gitops/edit): each format pins the digest, keeps comments and layout, is a
 * no-op when the file already pins the digest, and refuses a file without the expected entry with a typed failure
 * naming the repository and the file.
 */
import { editFile, fileFor } from '../../activities/gitops/edit';
import { failureOf } from '../../activities/gitops/errors';
import { gitopsDeliverySchema, type GitopsFormat } from '../../model/gitops';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const REPO = '127.0.0.1:5000/prod/delivery';
const where = { repository: 'http://127.0.0.1:19300/slipway/environments.git', file: 'overlays/prod/kustomization.yaml' };
const format = (f: unknown): GitopsFormat => gitopsDeliverySchema.shape.format.parse(f) as GitopsFormat;
const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return { failure: failureOf(e), type: (e as any).type, message: (e as Error).message };
  }
  throw new Error('not refused');
};

const KUSTOMIZATION = `# prod overlay: reviewed by the SRE team
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base   # the shared Deployment and Service
images:
  - name: delivery   # as base/deployment.yaml writes it
    newName: ${REPO}
    newTag: "v1.0.1"
    digest: ${D1}
  - name: sidecar
    newTag: '2.0'
`;

describe('kustomize', () => {
  const f = format('kustomize');
  const opts = format({ type: 'kustomize', imageName: 'delivery' });

  test('pins the entry named by imageName; every other byte (comments, quotes, other entries) is unchanged', () => {
    const r = editFile(opts, KUSTOMIZATION, { repository: REPO, digest: D2, tag: 'v1.0.2' }, where);
    expect(r).toMatchObject({ changed: true, previousDigest: D1 });
    expect(r.text).toBe(KUSTOMIZATION.replace(D1, D2).replace('"v1.0.1"', '"v1.0.2"'));
  });

  test('finds the entry by newName when imageName is not given', () => {
    expect(editFile(f, KUSTOMIZATION, { repository: REPO, digest: D2 }, where).text).toBe(KUSTOMIZATION.replace(D1, D2));
  });

  test('editing to the digest already pinned is a no-op (same text, changed false)', () => {
    const once = editFile(opts, KUSTOMIZATION, { repository: REPO, digest: D2, tag: 'v1.0.2' }, where);
    const twice = editFile(opts, once.text, { repository: REPO, digest: D2, tag: 'v1.0.2' }, where);
    expect(twice).toEqual({ text: once.text, changed: false, previousDigest: D2 });
  });

  test('an entry without digest/newName gets them added, comments kept', () => {
    const text = 'images:\n  # the service\n  - name: delivery\n    newTag: v1\n';
    const r = editFile(opts, text, { repository: REPO, digest: D2 }, where);
    expect(r.changed).toBe(true);
    expect(r.text).toContain('# the service');
    expect(r.text).toMatch(new RegExp(`- name: delivery\\n    newTag: v1\\n    digest: ${D2}\\n    newName: ${REPO.replace(/\./g, '\\.')}\\n`));
  });

  test('no matching images: entry → entry-missing, naming repository, file and image', () => {
    const r = refusal(() => editFile(format({ type: 'kustomize', imageName: 'payments' }), KUSTOMIZATION.replace(`newName: ${REPO}`, 'newName: other'), { repository: REPO, digest: D2 }, where));
    expect(r).toMatchObject({ failure: 'entry-missing', type: 'GitopsEntryMissingError' });
    expect(r.message).toMatch(/^http:\/\/127\.0\.0\.1:19300\/slipway\/environments\.git: overlays\/prod\/kustomization\.yaml has no images: entry named payments/);
    expect(refusal(() => editFile(f, 'resources: [base]\n', { repository: REPO, digest: D2 }, where)).failure).toBe('entry-missing');
  });

  test('a directory path means its kustomization.yaml', () => {
    expect(fileFor(f, 'overlays/prod')).toBe('overlays/prod/kustomization.yaml');
    expect(fileFor(f, 'overlays/prod/kustomization.yml')).toBe('overlays/prod/kustomization.yml');
    expect(fileFor(format('manifest'), 'prod/app')).toBe('prod/app');
  });
});

const HELM_RELEASE = `---
apiVersion: source.toolkit.fluxcd.io/v1
kind: HelmRepository
metadata: { name: charts, namespace: flux-system }
spec:
  url: oci://127.0.0.1:5000/charts
  type: oci
---
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: delivery
  namespace: backend
spec:
  interval: 5m
  chart:
    spec: { chart: delivery, version: "0.1.0", sourceRef: { kind: HelmRepository, name: charts } }
  values:
    replicaCount: 3
    image:
      repository: 127.0.0.1:5000/delivery   # promoted by slipway
      tag: v1.0.1
      digest: "${D1}"
`;

describe('helm-release', () => {
  const f = format('helm-release');

  test('sets spec.values.image.repository and .digest in place, keeping the other documents and comments', () => {
    const r = editFile(f, HELM_RELEASE, { repository: REPO, digest: D2, tag: 'v1.0.2' }, where);
    expect(r).toMatchObject({ changed: true, previousDigest: D1 });
    expect(r.text).toBe(HELM_RELEASE.replace('127.0.0.1:5000/delivery   #', `${REPO}   #`).replace(`"${D1}"`, `"${D2}"`));
  });

  test('configured keys (and a tag key); idempotent', () => {
    const text = 'apiVersion: helm.toolkit.fluxcd.io/v2beta2\nkind: HelmRelease\nmetadata: {name: delivery}\nspec:\n  values:\n    app:\n      image:\n        repo: x/delivery\n        tag: v1\n';
    const keys = format({ type: 'helm-release', repositoryKey: 'app.image.repo', digestKey: 'app.image.digest', tagKey: 'app.image.tag' });
    const r = editFile(keys, text, { repository: REPO, digest: D2, tag: 'v1.0.2' }, where);
    expect(r.text).toContain(`repo: ${REPO}\n        tag: v1.0.2\n        digest: ${D2}\n`);
    expect(editFile(keys, r.text, { repository: REPO, digest: D2, tag: 'v1.0.2' }, where)).toMatchObject({ changed: false, text: r.text });
  });

  test('no HelmRelease, an unknown name, several, or no repository key → entry-missing', () => {
    const pin = { repository: REPO, digest: D2 };
    expect(refusal(() => editFile(f, 'kind: Deployment\n', pin, where)).message).toMatch(/has no HelmRelease/);
    expect(refusal(() => editFile(format({ type: 'helm-release', name: 'payments' }), HELM_RELEASE, pin, where)).message).toMatch(/has no HelmRelease named payments/);
    expect(refusal(() => editFile(f, `${HELM_RELEASE}---\n${HELM_RELEASE.split('---\n')[2]}`, pin, where)).message).toMatch(/has 2 HelmReleases: set format\.name/);
    const r = refusal(() => editFile(format({ type: 'helm-release', repositoryKey: 'image.repo' }), HELM_RELEASE, pin, where));
    expect(r).toMatchObject({ failure: 'entry-missing' });
    expect(r.message).toMatch(/has no spec\.values\.image\.repo in HelmRelease delivery/);
  });
});

const MANIFEST = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: delivery
spec:
  template:
    spec:
      containers:
        - name: app
          image: 127.0.0.1:5000/delivery:v1.0.1@${D1} # slipway:image
          ports: [{ containerPort: 8080 }]
        - name: proxy
          image: envoy:1.30 # not ours
      initContainers:
        - name: migrate
          image: "127.0.0.1:5000/delivery:v1.0.1" # slipway:image  (same image)
`;

describe('manifest', () => {
  const f = format('manifest');

  test('rewrites every marked line, quoting kept, unmarked lines untouched', () => {
    const r = editFile(f, MANIFEST, { repository: REPO, digest: D2, tag: 'v1.0.2' }, where);
    expect(r).toMatchObject({ changed: true, previousDigest: D1 });
    expect(r.text).toBe(MANIFEST.replace(`127.0.0.1:5000/delivery:v1.0.1@${D1}`, `${REPO}:v1.0.2@${D2}`).replace('"127.0.0.1:5000/delivery:v1.0.1"', `"${REPO}:v1.0.2@${D2}"`));
    expect(editFile(f, r.text, { repository: REPO, digest: D2, tag: 'v1.0.2' }, where)).toMatchObject({ changed: false, text: r.text });
  });

  test('a custom marker; no marked line → entry-missing naming the marker', () => {
    const text = 'image: a/b:1 # deploy:pin\n';
    expect(editFile(format({ type: 'manifest', marker: 'deploy:pin' }), text, { repository: REPO, digest: D2 }, where).text).toBe(`image: ${REPO}@${D2} # deploy:pin\n`);
    const r = refusal(() => editFile(f, text, { repository: REPO, digest: D2 }, where));
    expect(r).toMatchObject({ failure: 'entry-missing' });
    expect(r.message).toMatch(/has no line marked "# slipway:image"/);
  });

  test('a file that is not YAML is refused with the file named', () => {
    expect(() => editFile(f, 'a: [b\n', { repository: REPO, digest: D2 }, where)).toThrow(/overlays\/prod\/kustomization\.yaml is not valid YAML/);
  });
});
