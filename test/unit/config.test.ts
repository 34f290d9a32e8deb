/** slipway.yaml and start requests: bad input is refused with the path of the field and the rule it broke. */
import fc from 'fast-check';
import { parseConfig, planRelease } from '../../model/plan';
import { UsageError } from '../../model/errors';
import { imageRefSchema, nameSchema, parseDuration, repoPathSchema, versionSchema } from '../../model/config';
import { sampleConfigText } from '../helpers';

const good = sampleConfigText();

describe('the sample configuration', () => {
  test('the shipped slipway.yaml is valid and plans a release', () => {
    const { readFileSync } = require('node:fs');
    const cfg = parseConfig(readFileSync(require('node:path').join(__dirname, '..', '..', 'slipway.yaml'), 'utf8'));
    const input = planRelease(cfg, { service: 'delivery', version: 'v1.0.2', requester: 'ci' });
    expect(input.environments.map((e) => `${e.name}:${e.registry.host}/${e.repository}`)).toEqual(['qa:127.0.0.1:5000/delivery', 'prod:127.0.0.1:5000/prod/delivery']);
    expect(input.environments[1].approval).toMatchObject({ groups: ['release-managers'], groupMembers: { 'release-managers': ['alice', 'bob', 'carol'] }, minApprovals: 1, timeoutMs: 72 * 3600_000, onTimeout: 'reject' });
  });
});

// [description, start request overrides, expected message]
const badRequests: [string, Record<string, unknown>, RegExp][] = [
  ['bad semver', { version: '1.0' }, /^version: must be a semantic version/m],
  ['semver with build metadata', { version: 'v1.0.0+build.1' }, /^version: must be a semantic version/m],
  ['leading zero', { version: 'v01.0.0' }, /^version: must be a semantic version/m],
  ['oversized version', { version: `v1.0.0-${'a'.repeat(200)}` }, /^version: must be at most 63 characters/m],
  // Item 11: these were accepted and failed after the push (Helm, the app.kubernetes.io/version label).
  ['version longer than a label value (63)', { version: `v1.0.0-${'a'.repeat(57)}` }, /^version: must be at most 63 characters \(it becomes the app\.kubernetes\.io\/version label/m],
  ['version ending in "-" (not a label value)', { version: 'v1.0.0-rc-' }, /^version: must end in a letter or digit/m],
  ['service name longer than a Helm release name (53)', { service: 'a'.repeat(54) }, /^service: must be at most 53 characters \(it is the Helm release name/m],
  ['service name ending in "-"', { service: 'delivery-' }, /^service: .*not end in "-"/m],
  ['image whose first component is no registry host', { image: 'library/nginx:1.0' }, /^image: "library" is not a registry host .*a fully qualified reference is needed, e\.g\. docker\.io\/library\/nginx:1\.0/m],
  ['image under a bare host name', { image: 'registry/delivery@sha256:' + 'a'.repeat(64) }, /^image: "registry" is not a registry host/m],
  ['shell metacharacters in version', { version: 'v1.0.0;rm -rf /' }, /^version: /m],
  ['unknown service', { service: 'payments' }, /^service: unknown service "payments"/m],
  ['upper-case service', { service: 'Delivery' }, /^service: must start with a lower-case letter/m],
  ['service with path traversal', { service: '../etc' }, /^service: must start with a lower-case letter/m],
  ['service with shell metacharacters', { service: 'delivery$(id)' }, /^service: /m],
  ['oversized service name', { service: `a${'b'.repeat(80)}` }, /^service: must be at most 63 characters/m],
  ['service name of 54 characters', { service: `a${'b'.repeat(53)}` }, /^service: must be at most 53 characters/m],
  ['git sha not hex', { gitSha: 'xyz123456' }, /^gitSha: must be 7 to 40 lower-case hex digits/m],
  ['git sha too long', { gitSha: 'a'.repeat(41) }, /^gitSha: must be 7 to 40/m],
  ['requester with spaces', { requester: 'alice smith' }, /^requester: must be a user name/m],
  ['requester with backticks', { requester: '`whoami`' }, /^requester: /m],
  ['empty requester', { requester: '' }, /^requester: must not be empty/m],
  ['image without registry', { image: 'delivery:v1' }, /^image: must be a fully qualified image reference/m],
  ['image with shell metacharacters', { image: '127.0.0.1:5000/delivery:v1;ls' }, /^image: /m],
  ['image with a bad digest', { image: '127.0.0.1:5000/delivery@sha256:1234' }, /^image: /m],
  ['unknown field', { force: true }, /Unrecognized key.*"force"|unrecognized key/i],
];

describe('start requests', () => {
  const cfg = parseConfig(good);
  test.each(['localhost:5000/x/y:1', 'registry:5000/delivery:v1', 'docker.io/library/nginx:1.0', 'myrepo.azurecr.io/prod/delivery@sha256:' + 'a'.repeat(64)])('accepts the fully qualified image %s', (image) => {
    expect(planRelease(cfg, { service: 'delivery', version: 'v1.0.2', requester: 'ci', image }).image).toBe(image);
  });
  test('accepts the longest version and service name the rules allow', () => {
    const version = `v1.0.0-${'a'.repeat(56)}`;
    expect(version).toHaveLength(63);
    expect(planRelease(cfg, { service: 'delivery', version, requester: 'ci' }).version).toBe(version);
    const long = 'd'.repeat(53);
    expect(planRelease(parseConfig(good.replace('  delivery:\n', `  ${long}:\n`)), { service: long, version: 'v1.0.0', requester: 'ci' }).service).toBe(long);
  });
  test.each(badRequests)('refuses %s', (_name, overrides, message) => {
    const req = { service: 'delivery', version: 'v1.0.2', requester: 'ci', ...overrides };
    let error: unknown;
    try {
      planRelease(cfg, req);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(message);
  });
});

const mutate = (from: string, to: string) => {
  expect(good.includes(from)).toBe(true);
  return good.replace(from, to);
};

// [description, config text, expected "path: rule"]
const badConfigs: [string, () => string, RegExp][] = [
  ['YAML syntax error', () => 'registries: [', /YAML error/],
  ['not a mapping', () => '42', /\(root\): /],
  ['unknown top-level key', () => `${good}\nextra: 1\n`, /\(root\): .*extra/i],
  ['unknown registry type', () => mutate('type: oci, url: "127.0.0.1:5000"', 'type: ecr, url: "127.0.0.1:5000"'), /^registries\.dev\.type: /m],
  ['registry url with a scheme', () => mutate('url: "127.0.0.1:5000"', 'url: "http://127.0.0.1:5000"'), /^registries\.dev\.url: must be a host name/m],
  ['registry host Docker would read as a path', () => mutate('url: "127.0.0.1:5000"', 'url: "registry"'), /^registries\.dev\.url: must contain a "\." or a port, or be localhost/m],
  ['service name longer than a Helm release name', () => mutate('  delivery:\n', `  ${'d'.repeat(54)}:\n`), new RegExp(`^services\\.${'d'.repeat(54)}: must be at most 53 characters`, 'm')],
  ['environment naming an unknown registry', () => mutate('qa: { registry: dev }', 'qa: { registry: nope }'), /^environments\.qa\.registry: names unknown registry "nope"/m],
  ['approver group that does not exist', () => mutate('group:release-managers, dave', 'group:admins, dave'), /^environments\.prod\.approval\.approvers\.0: names unknown group "admins"/m],
  ['zero approvals', () => mutate('minApprovals: 1', 'minApprovals: 0'), /^environments\.prod\.approval\.minApprovals: must be at least 1/m],
  ['fractional approvals', () => mutate('minApprovals: 1', 'minApprovals: 1.5'), /^environments\.prod\.approval\.minApprovals: must be a whole number/m],
  ['bad timeout', () => mutate('timeout: 72h', 'timeout: soon'), /^environments\.prod\.approval\.timeout: must be a duration/m],
  ['bad onTimeout', () => mutate('timeout: 72h }', 'timeout: 72h, onTimeout: retry }'), /^environments\.prod\.approval\.onTimeout: /m],
  ['build context with path traversal', () => mutate('context: services/delivery', 'context: ../../etc'), /^services\.delivery\.build\.context: must not contain "\.\." segments/m],
  ['absolute build context', () => mutate('context: services/delivery', 'context: /etc'), /^services\.delivery\.build\.context: must be relative/m],
  ['shell metacharacters in the context', () => mutate('context: services/delivery', 'context: "services/$(id)"'), /^services\.delivery\.build\.context: may hold only/m],
  ['Dockerfile path traversal', () => mutate('dockerfile: Dockerfile, args', 'dockerfile: ../Dockerfile, args'), /^services\.delivery\.build\.dockerfile: must not contain/m],
  ['bad build-arg name', () => mutate('args: { VERSION: test }', 'args: { "BAD NAME": x }'), /^services\.delivery\.build\.args\.BAD NAME: must be a build-arg name/m],
  ['oversized build-arg value', () => mutate('args: { VERSION: test }', `args: { VERSION: "${'x'.repeat(5000)}" }`), /^services\.delivery\.build\.args\.VERSION: must be at most 4096/m],
  ['service name with capitals', () => mutate('  delivery:\n', '  Delivery:\n'), /^services\.Delivery: must start with a lower-case letter/m],
  ['bad image prefix', () => mutate('imagePrefix: prod/', 'imagePrefix: ../prod'), /^environments\.prod\.imagePrefix: /m],
  ['ACR with a bad subscription', () => `${good.replace('registries:\n', 'registries:\n  acr: { type: acr, loginServer: myrepo.azurecr.io, subscriptionId: nope, resourceGroup: rg, registryName: myrepo }\n')}`, /^registries\.acr\.subscriptionId: must be a subscription GUID/m],
  ['a single environment', () => mutate('  qa: { registry: dev }\n', ''), /must define at least two environments/],
  ['pipeline naming an unknown environment', () => `${good}\npipeline: [qa, staging]\n`, /^pipeline\.1: names unknown environment "staging"/m],
];

describe('slipway.yaml', () => {
  test.each(badConfigs)('refuses %s', (_name, text, message) => {
    expect(() => parseConfig(text())).toThrow(UsageError);
    expect(() => parseConfig(text())).toThrow(message);
  });

  test(`at least 25 malformed requests and configurations are covered (${badRequests.length + badConfigs.length})`, () => {
    expect(badRequests.length + badConfigs.length).toBeGreaterThanOrEqual(25);
  });
});

describe('schema properties', () => {
  test('every accepted name is safe in an image reference, a workflow id and a shell word', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (s) => {
        if (nameSchema.safeParse(s).success) expect(s).toMatch(/^[a-z][a-z0-9-]{0,62}$/);
      }),
      { numRuns: 2000 },
    );
  });

  test('no accepted repo path escapes the repository or carries shell syntax', () => {
    const segment = fc.constantFrom('a', 'b', '..', '.', '', '$(x)', 'c d', '`', ';', '~', 'x_y', '-');
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 6 }), fc.boolean(), (parts, abs) => {
        const p = `${abs ? '/' : ''}${parts.join('/')}`;
        if (repoPathSchema.safeParse(p).success) {
          expect(p.startsWith('/')).toBe(false);
          expect(p.split('/')).not.toContain('..');
          expect(p).toMatch(/^[A-Za-z0-9._/-]+$/);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('semantic versions are accepted and their tags stay valid OCI tags', () => {
    const n = fc.nat({ max: 10_000 }).map(String);
    fc.assert(
      fc.property(n, n, n, fc.option(fc.stringMatching(/^[0-9A-Za-z-]{0,9}[0-9A-Za-z]$/), { nil: undefined }), fc.boolean(), (a, b, c, pre, v) => {
        const version = `${v ? 'v' : ''}${a}.${b}.${c}${pre ? `-${pre}` : ''}`;
        expect(versionSchema.safeParse(version).success).toBe(true);
        expect(imageRefSchema.safeParse(`127.0.0.1:5000/delivery:${version}`).success).toBe(true);
      }),
    );
  });

  test('durations round-trip', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.constantFrom('ms', 's', 'm', 'h', 'd'), (n, unit) => {
        const mult = ({ ms: 1, s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 } as Record<string, number>)[unit];
        expect(parseDuration(`${n}${unit}`)).toBe(n * mult);
      }),
    );
    expect(parseDuration('1.5h')).toBeUndefined();
    expect(parseDuration('-1s')).toBeUndefined();
  });
});

describe('the workflow-side input rules (no zod) agree with the schemas', () => {
  const { releaseInputProblems } = require('../../model/rules');
  const { releaseInputSchema } = require('../../model/types');
  const { plan } = require('../helpers');

  test('a planned release has no problems; each broken field is named', () => {
    const good = plan({ version: 'v1.2.3' });
    expect(releaseInputProblems(good)).toEqual([]);
    expect(releaseInputProblems({ ...good, version: '1.2' })).toEqual(['input.version: must be a semantic version such as v1.0.2 or 1.4.0-rc.1 (no build metadata)']);
    expect(releaseInputProblems({ ...good, version: `v1.0.0-${'a'.repeat(57)}` })).toEqual([expect.stringMatching(/^input\.version: must be at most 63 characters/)]);
    expect(releaseInputProblems({ ...good, service: 'a'.repeat(54) })).toEqual(['input.service: must be a service name of at most 53 characters']);
    expect(releaseInputProblems({ ...good, image: '127.0.0.1:5000/x:1' })).toEqual(['input.image: exactly one of build or image must be given']);
    expect(releaseInputProblems({ ...good, build: { context: '../etc', dockerfile: 'Dockerfile' } })).toEqual(['input.build: context and dockerfile must be paths inside the repository']);
    expect(releaseInputProblems({ ...good, environments: good.environments.slice(0, 1) })).toEqual(['input.environments: must list at least two environments']);
  });

  test('property: whatever the rules accept for version and service, the schema accepts too', () => {
    const base = plan({ version: 'v1.2.3' });
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), (version, service) => {
        const candidate = { ...base, version, service };
        if (releaseInputProblems(candidate).length === 0) expect(releaseInputSchema.safeParse(candidate).success).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('deploy and canary configuration', () => {
  const { canaryText, deployConfigText } = require('../deploy-helpers') as typeof import('../deploy-helpers');
  const STEPS = '[ { setWeight: 20 }, { analysis: { duration: 2m, interval: 30s } } ]';
  const withCanary = (canary: string) => deployConfigText({ ns: 'u', prodCanary: canary });
  const canary = (o: Partial<Parameters<typeof canaryText>[0]> = {}) => canaryText({ prometheus: 'http://127.0.0.1:9090', steps: STEPS, ...o });

  test('a canary plan carries durations in milliseconds and the queries by metric', () => {
    const input = planRelease(parseConfig(withCanary(canary())), { service: 'delivery', version: 'v1.0.0', requester: 'ci' });
    const prod = input.environments[1];
    expect(prod.canary?.steps).toEqual([{ setWeight: 20 }, { analysis: { durationMs: 120_000, intervalMs: 30_000 } }]);
    expect(prod.canary?.queries.map((q) => q.name)).toEqual(['errors', 'latency']);
    expect(prod.canary?.judge.thresholds).toEqual({ pass: 95, marginal: 75 });
  });

  test.each([
    ['an unknown field', canary().replace('decisionTimeout:', 'bogus: 1, decisionTimeout:'), /environments\.prod\.canary: Unrecognized key: "bogus"/],
    ['marginal above pass', canary().replace('groupWeights:', 'groupWeights: { errors: 80, latency: 20 }, thresholds: { pass: 60, marginal: 80 }, x_:').replace(/, x_: \{[^}]*\} \}/, ' }'), /canary\.judge\.thresholds\.marginal: must not exceed thresholds\.pass \(60\)/],
    ['a query without $track', canary().replace('track="$track"}[5s])) or', 'track="canary"}[5s])) or').replace(/\/ sum\(rate\(http_requests_total\{track="\$track"\}\[5s\]\)\)/, '/ 1'), /canary\.queries\.errors: must use \$track/],
    ['a metric without a query', canary().replace(/latency: 'sum[^']*',?/, ''), /canary\.judge\.metrics\.1\.name: has no query in canary\.queries/],
    ['an interval longer than its analysis', canary({ steps: '[ { analysis: { duration: 1m, interval: 2m } } ]' }), /canary\.steps\.0\.analysis\.interval: must not be longer than the duration/],
    ['more than 480 intervals', canary({ steps: '[ { analysis: { duration: 9h, interval: 1m } } ]' }), /canary\.steps: add up to 540 analysis intervals; at most 480/],
    ['no analysis step', canary({ steps: '[ { setWeight: 50 }, { pause: {} } ]' }), /canary\.steps: must include at least one analysis step/],
    ['a weight of 100', canary({ steps: '[ { setWeight: 100 }, { analysis: { duration: 1m, interval: 1m } } ]' }), /canary\.steps\.0/],
    // Item 11: replicaCount 2 (the chart values) cannot carry 99 %: that took 198 canary pods, patched mid-canary.
    [
      'a weight the replica ratio cannot express',
      canary({ steps: '[ { setWeight: 25 }, { analysis: { duration: 1m, interval: 1m } }, { setWeight: 99 } ]' }),
      /^environments\.prod\.canary\.steps\.2\.setWeight: 99 % cannot be expressed by replica ratio with 2 stable replicas: it needs 198 canary pods.*33 %, 50 % .*replicaCount: 2/m,
    ],
  ])('refuses %s', (_name, text, message) => {
    expect(() => parseConfig(withCanary(text))).toThrow(message);
  });

  test('weights are checked against the environment\'s own replicaCount, and not at all for route-weighted traffic', () => {
    const steps = '[ { setWeight: 75 }, { analysis: { duration: 1m, interval: 1m } } ]';
    // 75 % needs 6 canary pods beside 2 stable ones, 12 beside 4: more than the stable Deployment either way.
    expect(() => parseConfig(withCanary(canary({ steps })))).toThrow(/steps\.0\.setWeight: 75 % .* 2 stable replicas/);
    expect(() => parseConfig(deployConfigText({ ns: 'u', prodCanary: canary({ steps }), prodValues: '{ replicaCount: 4 }' }))).toThrow(/75 % cannot be expressed by replica ratio with 4 stable replicas: it needs 12 canary pods.*20 %, 33 %, 43 %, 50 %/);
    expect(() => parseConfig(withCanary(canary({ steps, traffic: '{ type: gateway-api, route: delivery }' })))).not.toThrow();
    expect(() => parseConfig(withCanary(canary({ steps: '[ { setWeight: 50 }, { analysis: { duration: 1m, interval: 1m } } ]' })))).not.toThrow();
  });
});
