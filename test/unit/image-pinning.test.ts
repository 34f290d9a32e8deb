/** The pure parts of the digest check: image references, rendered workloads of every kind, the values slipway sets. */
import { DEFAULT_IMAGE_VALUES, pinningProblems, renderedContainers, withImageValues } from '../../activities/helm/images';
import { parseImageRef } from '../../model/identifiers';

const D = `sha256:${'a'.repeat(64)}`;
const image = { repository: '127.0.0.1:5000/prod/delivery', digest: D, version: 'v1.2.3' };

test.each([
  ['127.0.0.1:5000/prod/delivery', { name: '127.0.0.1:5000/prod/delivery' }],
  ['127.0.0.1:5000/prod/delivery:v1', { name: '127.0.0.1:5000/prod/delivery', tag: 'v1' }],
  [`127.0.0.1:5000/prod/delivery@${D}`, { name: '127.0.0.1:5000/prod/delivery', digest: D }],
  [`127.0.0.1:5000/prod/delivery:v1@${D}`, { name: '127.0.0.1:5000/prod/delivery', tag: 'v1', digest: D }],
  ['busybox', { name: 'busybox' }],
])('parseImageRef(%s)', (ref, parts) => expect(parseImageRef(ref)).toEqual(parts));

test('every workload kind, init containers included; other kinds are ignored', () => {
  const pod = (img: string) => ({ initContainers: [{ name: 'init', image: `${img}-init` }], containers: [{ name: 'main', image: img }] });
  const docs = [
    { kind: 'Pod', metadata: { name: 'p' }, spec: pod('p') },
    ...['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job'].map((kind) => ({ kind, metadata: { name: kind.toLowerCase() }, spec: { template: { spec: pod(kind) } } })),
    { kind: 'CronJob', metadata: { name: 'c' }, spec: { jobTemplate: { spec: { template: { spec: pod('cron') } } } } },
    { kind: 'Service', metadata: { name: 's' }, spec: { ports: [] } },
  ];
  const text = `# Source: x\n${docs.map((d) => JSON.stringify(d)).join('\n---\n')}\n---\n`;
  const found = renderedContainers(text);
  expect(found).toHaveLength(14);
  expect(found.filter((c) => c.init).map((c) => `${c.kind}/${c.name}:${c.image}`)).toContain('CronJob/c:cron-init');
  expect(found.find((c) => c.kind === 'StatefulSet' && !c.init)).toEqual({ kind: 'StatefulSet', name: 'statefulset', container: 'main', init: false, image: 'StatefulSet' });
});

test('the default values cover repository:tag and repository@digest templates; siblings survive', () => {
  const v = withImageValues({ image: { pullPolicy: 'Always' }, other: 1 }, DEFAULT_IMAGE_VALUES, image);
  expect(v).toEqual({ image: { pullPolicy: 'Always', repository: image.repository, tag: `v1.2.3@${D}`, digest: D }, other: 1 });
  const custom = withImageValues({ app: { img: 'a string before' } }, { registry: 'app.img.host', repository: 'app.img.name', digest: 'app.img.sha' }, image);
  expect(custom).toEqual({ app: { img: { host: '127.0.0.1:5000', name: 'prod/delivery', sha: D } } });
});

test('pinning problems: a tag, another digest, an init container, or no container of the repository', () => {
  const c = (img: string, init = false) => ({ kind: 'Deployment', name: 'd', container: init ? 'migrate' : 'app', init, image: img });
  expect(pinningProblems([c(`${image.repository}:v1.2.3@${D}`), c('busybox')], image, DEFAULT_IMAGE_VALUES)).toEqual([]);
  expect(pinningProblems([c(`${image.repository}@${D}`), c(`${image.repository}:v1.2.3`, true)], image, DEFAULT_IMAGE_VALUES)[0]).toBe(
    `init container "migrate" of Deployment/d runs "${image.repository}:v1.2.3" (a tag, no digest; it reads image.repository)`,
  );
  const other = `sha256:${'b'.repeat(64)}`;
  expect(pinningProblems([c(`${image.repository}@${other}`)], image, DEFAULT_IMAGE_VALUES)[0]).toContain(`digest ${other}`);
  const none = pinningProblems([c('nginx:1.27')], image, DEFAULT_IMAGE_VALUES);
  expect(none[0]).toBe(`no container runs ${image.repository}: container "app" of Deployment/d runs "nginx:1.27" (it reads none of image.repository, image.tag, image.digest)`);
  expect(none[1]).toMatch(/^slipway set image\.repository=127\.0\.0\.1:5000\/prod\/delivery, image\.tag=v1\.2\.3@sha256:a+, image\.digest=sha256:a+: make the chart's image read them/);
  expect(pinningProblems([], image, DEFAULT_IMAGE_VALUES)[0]).toContain('the chart renders no workload');
});
