/**
 * Property-based tests (fast-check) of every input Slipway accepts from a person: the start request, slipway.yaml,
 * scan policies and judge configs. The generators are written from the documented rules (README, Configuration;
 * the rule messages) and never from the schemas under test, so loosening a rule makes a property fail: every
 * generated valid input is accepted, every generated invalid one is refused with the field named — by the pure
 * validation that runs before anything is started, built, pushed or deployed.
 *
 * Seeded (FUZZ_SEED, default below); fast-check prints the seed and the counterexample's path on a failure.
 */
import fc from 'fast-check';
import { stringify } from 'yaml';
import { judgeConfigSchema } from '../../client/canary-command';
import { parseConfig, planRelease } from '../../model/plan';
import { UsageError } from '../../model/errors';
import { judge } from '../../workflows/canary/judge';
import { type JudgeConfig } from '../../model/canary';
import { formatIssues } from '../../model/config';
import { startRequestProblems } from '../../model/requests';
import { releaseInputProblems } from '../../model/rules';
import { sampleConfigText } from '../helpers';

const SEED = Number(process.env.FUZZ_SEED ?? 20261201);
const RUNS = { numRuns: 200, seed: SEED };

// ---- building blocks, from the documented rules ----

const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const UPPER = LOWER.toUpperCase();
const DIGITS = '0123456789';
const HEX = '0123456789abcdef';
const chars = (set: string) => fc.constantFrom(...set.split(''));
const word = (set: string, minLength: number, maxLength: number) => fc.array(chars(set), { minLength, maxLength }).map((a) => a.join(''));

/** Refused with the field named: a line of the message starts with "<path>: ". */
function refusedAt(fn: () => unknown, path: string): string {
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  }
  if (!(error instanceof UsageError)) throw new Error(`expected a UsageError naming ${path}, got ${error === undefined ? 'acceptance' : String(error)}`);
  const escaped = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  expect(error.message).toMatch(new RegExp(`^${escaped}: `, 'm'));
  return error.message;
}

/** Names: a lower-case letter first, then a-z, 0-9 and "-", not ending in "-"; at most `max` characters. */
const nameOfLength = (len: number) =>
  len === 1 ? chars(LOWER) : fc.tuple(chars(LOWER), word(`${LOWER}${DIGITS}-`, len - 2, len - 2), chars(LOWER + DIGITS)).map((p) => p.join(''));
const validName = (max: number) => fc.integer({ min: 1, max }).chain(nameOfLength);
const invalidName = (max: number) =>
  fc.oneof(
    fc.constant(''),
    fc.tuple(chars(`${DIGITS}-${UPPER}_.`), validName(max - 1)).map(([c, n]) => c + n), // a bad first character
    validName(max - 1).map((n) => `${n}-`), // ends in "-"
    fc.tuple(validName(max - 2), chars(`_. /$;:A\`"'`), fc.nat()).map(([n, c, i]) => n.slice(0, 1 + (i % n.length)) + c + n.slice(1 + (i % n.length)) + 'x'),
    fc.integer({ min: max + 1, max: max + 40 }).chain(nameOfLength), // too long
  );

/** Service names double as Helm release names: at most 53. */
const SERVICE_MAX = 53;

/** Semantic versions (optional "v"), no leading zeros, pre-release identifiers, no build metadata; ≤ 63, ends alnum. */
const numeric = fc.oneof(fc.constant('0'), fc.integer({ min: 1, max: 99_999 }).map(String));
const preIdent = fc.tuple(chars(LOWER + UPPER), word(`${LOWER}${UPPER}${DIGITS}-`, 0, 8), chars(LOWER + UPPER + DIGITS)).map((p) => p.join(''));
const validVersion = fc
  .tuple(fc.boolean(), numeric, numeric, numeric, fc.array(fc.oneof(preIdent, numeric), { maxLength: 4 }))
  .map(([v, a, b, c, pre]) => `${v ? 'v' : ''}${a}.${b}.${c}${pre.length ? `-${pre.join('.')}` : ''}`)
  .filter((v) => v.length <= 63);
const invalidVersion = fc.oneof(
  fc.constantFrom('', '1', '1.0', 'v1', '1.0.0.0', 'x.y.z', '01.0.0', '1.00.0', '1.0.01', 'v1.0.0-', 'v1.0.0-rc-', '1.0.0-rc..1', '-1.0.0', 'vv1.0.0'),
  validVersion.map((v) => `${v}+build.1`), // build metadata: "+" is not allowed in an image tag
  fc.tuple(validVersion, chars(' ;$`/_:~^'), fc.nat()).map(([v, c, i]) => v.slice(0, i % (v.length + 1)) + c + v.slice(i % (v.length + 1))),
  fc.tuple(numeric, word(LOWER, 70, 90)).map(([a, p]) => `v${a}.0.0-${p}`), // longer than a label value (63)
);

const validSha = fc.integer({ min: 7, max: 40 }).chain((n) => word(HEX, n, n));
const invalidSha = fc.oneof(
  fc.integer({ min: 0, max: 6 }).chain((n) => word(HEX, n, n)),
  fc.integer({ min: 41, max: 64 }).chain((n) => word(HEX, n, n)),
  fc.tuple(word(HEX, 6, 39), chars('ABCDEFgxyz -')).map(([h, c]) => `${c}${h}`),
);

/** Identities: a letter or digit first, then letters, digits, ".", "_", "@", "+", "-"; at most 128. */
const validIdentity = fc.tuple(chars(LOWER + UPPER + DIGITS), word(`${LOWER}${UPPER}${DIGITS}._@+-`, 0, 127)).map(([a, b]) => a + b);
const invalidIdentity = fc.oneof(
  fc.constant(''),
  fc.tuple(chars('._@+-'), validIdentity).map(([c, s]) => (c + s).slice(0, 128)),
  fc.tuple(validIdentity, chars(' `$;/\\"\'<>&|*?!#%()'), fc.nat()).map(([s, c, i]) => (s.slice(0, 1 + (i % s.length)) + c + s.slice(1 + (i % s.length))).slice(0, 128)),
  word(LOWER, 129, 160),
);

/** Image references: a registry host (with a "." or a port, or localhost), a lower-case path, an optional tag and digest. */
const label = fc.tuple(chars(LOWER + DIGITS), word(`${LOWER}${DIGITS}-`, 0, 6), chars(LOWER + DIGITS)).map((p) => p.join(''));
const port = fc.integer({ min: 1, max: 65535 }).map(String);
const validHost = fc.oneof(
  fc.constant('localhost'),
  fc.tuple(fc.constant('localhost'), port).map(([h, p]) => `${h}:${p}`),
  fc.tuple(fc.array(label, { minLength: 2, maxLength: 4 }), fc.option(port, { nil: undefined })).map(([l, p]) => `${l.join('.')}${p ? `:${p}` : ''}`),
  fc.tuple(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }), fc.option(port, { nil: undefined })).map(([o, p]) => `${o.join('.')}${p ? `:${p}` : ''}`),
  fc.tuple(label, port).map(([l, p]) => `${l}:${p}`),
);
const alnumLower = word(LOWER + DIGITS, 1, 8);
const pathComponent = fc.tuple(alnumLower, fc.array(fc.tuple(fc.constantFrom('.', '_', '__', '-', '--'), alnumLower), { maxLength: 2 })).map(([a, rest]) => a + rest.map((r) => r.join('')).join(''));
const repoPath = fc.array(pathComponent, { minLength: 1, maxLength: 3 }).map((c) => c.join('/'));
const tag = fc.tuple(chars(`${LOWER}${UPPER}${DIGITS}_`), word(`${LOWER}${UPPER}${DIGITS}_.-`, 0, 30)).map(([a, b]) => a + b);
const digest = word(HEX, 64, 64).map((h) => `sha256:${h}`);
const validImage = fc
  .tuple(validHost, repoPath, fc.option(tag, { nil: undefined }), fc.option(digest, { nil: undefined }))
  .map(([h, p, t, d]) => `${h}/${p}${t ? `:${t}` : ''}${d ? `@${d}` : ''}`);
const invalidImage = fc.oneof(
  fc.tuple(repoPath, tag).map(([p, t]) => `${p.split('/')[0]}:${t}`), // no registry at all: "delivery:v1"
  fc.tuple(word(LOWER, 1, 10), repoPath, tag).map(([bare, p, t]) => `${bare === 'localhost' ? 'library' : bare}/${p}:${t}`), // "library/nginx:1.0"
  fc.tuple(validHost, repoPath).map(([h, p]) => `${h}/${p.toUpperCase()}X`), // upper-case path
  fc.tuple(validHost, repoPath, word(LOWER, 129, 140)).map(([h, p, t]) => `${h}/${p}:${t}`), // tag over 128
  fc.tuple(validHost, repoPath, word(HEX, 1, 63)).map(([h, p, d]) => `${h}/${p}@sha256:${d}`), // short digest
  fc.tuple(validHost, repoPath, chars(' ;$`|&<>')).map(([h, p, c]) => `${h}/${p}${c}ls`),
  fc.tuple(fc.constantFrom('http://', 'https://', 'docker://'), validHost, repoPath).map(([s, h, p]) => `${s}${h}/${p}`),
);

/** Durations: a whole number and ms, s, m, h or d; longer than zero and at most 30 days. */
const validDuration = fc.oneof(
  fc.integer({ min: 1, max: 2_592_000_000 }).map((n) => `${n}ms`),
  fc.integer({ min: 1, max: 2_592_000 }).map((n) => `${n}s`),
  fc.integer({ min: 1, max: 43_200 }).map((n) => `${n}m`),
  fc.integer({ min: 1, max: 720 }).map((n) => `${n}h`),
  fc.integer({ min: 1, max: 30 }).map((n) => `${n}d`),
);
const invalidDuration = fc.oneof(
  fc.constantFrom('', 'soon', '0s', '0d', '1.5h', '-1s', '10', 'h', '1 h', '1w', '1y', '31d', '721h', 'P1D'),
  fc.integer({ min: 31, max: 10_000 }).map((n) => `${n}d`),
);

// ---- the start request ----

describe('fuzz: the start request', () => {
  const cfg = parseConfig(sampleConfigText());
  // The generated service replaces "delivery" in the sample configuration (unless it is already there).
  const configFor = (service: string) => (cfg.services[service] ? cfg : parseConfig(sampleConfigText().replace('\n  delivery:\n', `\n  ${service}:\n`)));
  const base = { service: 'delivery', version: 'v1.0.2', requester: 'ci' };

  test('every request that follows the documented rules is accepted, as given', () => {
    fc.assert(
      fc.property(validName(SERVICE_MAX), validVersion, validIdentity, fc.option(validSha, { nil: undefined }), fc.option(validImage, { nil: undefined }), (service, version, requester, gitSha, image) => {
        const req = { service, version, requester, ...(gitSha ? { gitSha } : {}), ...(image ? { image } : {}) };
        const input = planRelease(configFor(service), req);
        // Identities are normalised once (trimmed, lower-case) before anything compares them.
        expect(input).toMatchObject({ ...req, requester: requester.toLowerCase() });
        // The workflow's own (zod-free) checks agree: of the request it is started with, and of the plan.
        expect(startRequestProblems(req)).toEqual([]);
        expect(releaseInputProblems(input)).toEqual([]);
      }),
      RUNS,
    );
  });

  const invalidField = fc.oneof(
    fc.tuple(fc.constant('service'), invalidName(SERVICE_MAX)),
    fc.tuple(fc.constant('version'), invalidVersion),
    fc.tuple(fc.constant('requester'), invalidIdentity),
    fc.tuple(fc.constant('gitSha'), invalidSha),
    fc.tuple(fc.constant('image'), invalidImage),
    fc.tuple(fc.constantFrom('service', 'version', 'requester', 'gitSha', 'image'), fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 2 }))),
  );

  test('every request that breaks one rule is refused, naming that field, before anything starts', () => {
    fc.assert(
      fc.property(invalidField, ([field, value]) => {
        const message = refusedAt(() => planRelease(cfg, { ...base, [field]: value }), field);
        // Refused by the rule, not by the lookup that follows it.
        expect(message).not.toMatch(/unknown service/);
        // A start that bypassed the client is refused by the workflow, naming the same field (which trims a
        // requester first: identities are normalised once, trimmed and lower-cased).
        if (field === 'requester' && typeof value === 'string' && value.trim() !== value) return;
        expect(startRequestProblems({ ...base, [field]: value })).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^input\\.${field}: `))]));
      }),
      RUNS,
    );
  });

  test('a field the request does not document is refused', () => {
    const known = new Set(['service', 'version', 'gitSha', 'image', 'requester', 'requesterToken']);
    fc.assert(
      fc.property(
        word(`${LOWER}${UPPER}_`, 1, 12).filter((k) => !known.has(k) && !(k in Object.prototype)),
        fc.jsonValue(),
        (key, value) => {
          expect(() => planRelease(cfg, { ...base, [key]: value })).toThrow(UsageError);
          expect(() => planRelease(cfg, { ...base, [key]: value })).toThrow(new RegExp(`${key}`));
        },
      ),
      RUNS,
    );
  });

  test('the workflow refuses the same broken fields in a plan that bypassed the client', () => {
    const planned = planRelease(cfg, { ...base, image: '127.0.0.1:5000/delivery:v1' });
    const bypass = fc.oneof(
      fc.tuple(fc.constant('service'), invalidName(SERVICE_MAX)),
      fc.tuple(fc.constant('version'), invalidVersion),
      fc.tuple(fc.constant('image'), invalidImage),
    );
    fc.assert(
      fc.property(bypass, ([field, value]) => {
        expect(releaseInputProblems({ ...planned, [field]: value })).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^input\\.${field}: `))]));
      }),
      RUNS,
    );
  });
});

// ---- slipway.yaml ----

const guid = fc.tuple(word(HEX, 8, 8), word(HEX, 4, 4), word(HEX, 4, 4), word(HEX, 4, 4), word(HEX, 12, 12)).map((p) => p.join('-'));
const safeRepoPath = fc.array(word(`${LOWER}${UPPER}${DIGITS}._-`, 1, 10).filter((s) => s !== '.' && s !== '..'), { minLength: 1, maxLength: 4 }).map((s) => s.join('/'));
const buildArgName = fc.tuple(chars(`${LOWER}${UPPER}_`), word(`${LOWER}${UPPER}${DIGITS}_`, 0, 20)).map(([a, b]) => a + b);

interface Doc {
  registries: Record<string, Record<string, unknown>>;
  groups: Record<string, string[]>;
  environments: Record<string, Record<string, unknown>>;
  services: Record<string, Record<string, unknown>>;
  pipeline?: string[];
}

const validRegistry = fc.oneof(
  fc.record({ type: fc.constant('oci'), url: validHost, insecure: fc.boolean() }),
  fc.record({
    type: fc.constant('acr'),
    loginServer: validHost,
    subscriptionId: guid,
    resourceGroup: word(`${LOWER}${UPPER}${DIGITS}._()-`, 1, 90),
    registryName: word(`${LOWER}${UPPER}${DIGITS}`, 5, 50),
  }),
);

const validDoc: fc.Arbitrary<Doc> = fc
  .record({
    registryNames: fc.uniqueArray(validName(63), { minLength: 1, maxLength: 3 }),
    groupNames: fc.uniqueArray(validName(63), { maxLength: 2 }),
    envNames: fc.uniqueArray(validName(63), { minLength: 2, maxLength: 4 }),
    serviceNames: fc.uniqueArray(validName(SERVICE_MAX), { minLength: 1, maxLength: 3 }),
  })
  .chain(({ registryNames, groupNames, envNames, serviceNames }) =>
    fc.record({
      registries: fc.tuple(...registryNames.map(() => validRegistry)).map((rs) => Object.fromEntries(registryNames.map((n, i) => [n, rs[i]]))),
      groups: fc.tuple(...groupNames.map(() => fc.array(validIdentity, { maxLength: 3 }))).map((gs) => Object.fromEntries(groupNames.map((n, i) => [n, gs[i]]))),
      environments: fc
        .tuple(
          ...envNames.map(() =>
            fc.record(
              {
                registry: fc.constantFrom(...registryNames),
                imagePrefix: fc.array(pathComponent, { maxLength: 2 }).map((s) => s.map((x) => `${x}/`).join('')),
                approval: fc.record(
                  {
                    approvers: fc.array(fc.oneof(validIdentity, validIdentity.map((u) => `user:${u}`), ...(groupNames.length ? [fc.constantFrom(...groupNames.map((g) => `group:${g}`))] : [])), { minLength: 1, maxLength: 3 }),
                    minApprovals: fc.integer({ min: 1, max: 10 }),
                    requesterCannotApprove: fc.boolean(),
                    timeout: validDuration,
                    onTimeout: fc.constantFrom('reject', 'approve'),
                  },
                  { requiredKeys: ['approvers'] },
                ),
              },
              { requiredKeys: ['registry'] },
            ),
          ),
        )
        .map((es) => Object.fromEntries(envNames.map((n, i) => [n, es[i]]))),
      services: fc
        .tuple(
          ...serviceNames.map(() =>
            fc.record(
              {
                repository: repoPath,
                build: fc.record({ context: safeRepoPath, dockerfile: safeRepoPath, args: fc.dictionary(buildArgName, fc.string({ maxLength: 40 }), { maxKeys: 3 }) }, { requiredKeys: ['context'] }),
              },
              { requiredKeys: ['build'] },
            ),
          ),
        )
        .map((ss) => Object.fromEntries(serviceNames.map((n, i) => [n, ss[i]]))),
      pipeline: fc.option(fc.shuffledSubarray(envNames, { minLength: 2 }), { nil: undefined }),
    }),
  )
  .map((d) => {
    const doc: Doc = { ...d };
    if (doc.pipeline === undefined) delete doc.pipeline;
    return doc;
  });

type Mutation = (doc: Doc, pick: number) => { doc: Doc; path: string };
const pickKey = (o: Record<string, unknown>, pick: number) => Object.keys(o)[pick % Object.keys(o).length];
const clone = (d: Doc): Doc => JSON.parse(JSON.stringify(d));
const renameKey = (o: Record<string, unknown>, from: string, to: string) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k === from ? to : k, v]));

const mutations = (): fc.Arbitrary<[Mutation, number]> =>
  fc.tuple(
    fc.oneof(
      invalidName(SERVICE_MAX)
        .filter((n) => n !== '' && !n.includes('.'))
        .map<Mutation>((bad) => (d, pick) => {
          const doc = clone(d);
          const svc = pickKey(doc.services, pick);
          doc.services = renameKey(doc.services, svc, bad) as Doc['services'];
          return { doc, path: `services.${bad}` };
        }),
      invalidName(63)
        .filter((n) => n !== '' && !n.includes('.'))
        .map<Mutation>((bad) => (d, pick) => {
          const doc = clone(d);
          const reg = pickKey(doc.registries, pick);
          doc.registries = renameKey(doc.registries, reg, bad) as Doc['registries'];
          return { doc, path: `registries.${bad}` };
        }),
      validName(63).map<Mutation>((unknown) => (d, pick) => {
        const doc = clone(d);
        const env = pickKey(doc.environments, pick);
        const name = doc.registries[unknown] ? `${unknown}x` : unknown;
        doc.environments[env].registry = name;
        return { doc, path: `environments.${env}.registry` };
      }),
      fc.oneof(fc.constantFrom(0, 11, 1.5, -1), fc.constant('2')).map<Mutation>((bad) => (d, pick) => {
        const doc = clone(d);
        const env = pickKey(doc.environments, pick);
        doc.environments[env].approval = { approvers: ['alice'], minApprovals: bad };
        return { doc, path: `environments.${env}.approval.minApprovals` };
      }),
      invalidDuration.map<Mutation>((bad) => (d, pick) => {
        const doc = clone(d);
        const env = pickKey(doc.environments, pick);
        doc.environments[env].approval = { approvers: ['alice'], timeout: bad };
        return { doc, path: `environments.${env}.approval.timeout` };
      }),
      fc
        .oneof(
          safeRepoPath.map((p) => `/${p}`),
          safeRepoPath.map((p) => `${p}/../..`),
          fc.constantFrom('..', '../etc', 'a/../../b'),
          fc.tuple(safeRepoPath, chars(' $`;|&*?~\'"\\')).map(([p, c]) => `${p}${c}x`),
        )
        .map<Mutation>((bad) => (d, pick) => {
          const doc = clone(d);
          const svc = pickKey(doc.services, pick);
          (doc.services[svc].build as Record<string, unknown>).context = bad;
          return { doc, path: `services.${svc}.build.context` };
        }),
      fc.oneof(fc.constantFrom('registry', 'myregistry', 'registry-1'), validName(30)).map<Mutation>((bare) => (d, pick) => {
        const doc = clone(d);
        const reg = pickKey(doc.registries, pick);
        const bareHost = bare === 'localhost' ? 'localhostx' : bare;
        doc.registries[reg] = { type: 'oci', url: bareHost };
        return { doc, path: `registries.${reg}.url` };
      }),
      fc
        .oneof(fc.tuple(chars(DIGITS + '-'), buildArgName).map(([c, n]) => c + n), fc.tuple(buildArgName, chars(' .-$=')).map(([n, c]) => `${n}${c}x`), word(LOWER, 65, 80))
        .map<Mutation>((bad) => (d, pick) => {
          const doc = clone(d);
          const svc = pickKey(doc.services, pick);
          (doc.services[svc].build as Record<string, unknown>).args = { [bad]: 'x' };
          return { doc, path: `services.${svc}.build.args.${bad}` };
        }),
      word(LOWER, 1, 12)
        .filter((k) => !['registries', 'groups', 'environments', 'services', 'pipeline', 'ui', 'identity'].includes(k))
        .map<Mutation>((key) => (d) => ({ doc: { ...clone(d), [key]: 1 } as Doc, path: '(root)' })),
      validName(63).map<Mutation>((unknown) => (d) => {
        const doc = clone(d);
        const name = doc.environments[unknown] ? `${unknown}x` : unknown;
        doc.pipeline = [...Object.keys(doc.environments), name];
        return { doc, path: `pipeline.${Object.keys(doc.environments).length}` };
      }),
      fc.oneof(fc.constantFrom('../prod', '/prod/', 'prod', 'Prod/', 'prod//'), pathComponent).map<Mutation>((bad) => (d, pick) => {
        const doc = clone(d);
        const env = pickKey(doc.environments, pick);
        doc.environments[env].imagePrefix = bad;
        return { doc, path: `environments.${env}.imagePrefix` };
      }),
      validName(63).map<Mutation>((g) => (d, pick) => {
        const doc = clone(d);
        const env = pickKey(doc.environments, pick);
        const name = doc.groups[g] ? `${g}x` : g;
        doc.environments[env].approval = { approvers: [`group:${name}`] };
        return { doc, path: `environments.${env}.approval.approvers.0` };
      }),
    ),
    fc.nat(),
  );

describe('fuzz: slipway.yaml', () => {
  test('every configuration written to the documented rules is accepted', () => {
    fc.assert(
      fc.property(validDoc, (doc) => {
        const cfg = parseConfig(stringify(doc));
        expect(Object.keys(cfg.services).sort()).toEqual(Object.keys(doc.services).sort());
        expect(Object.keys(cfg.environments).sort()).toEqual(Object.keys(doc.environments).sort());
      }),
      RUNS,
    );
  });

  test('every configuration that breaks one rule is refused, naming the field', () => {
    fc.assert(
      fc.property(validDoc, mutations(), (valid, [mutate, pick]) => {
        const { doc, path } = mutate(valid, pick);
        refusedAt(() => parseConfig(stringify(doc)), path);
      }),
      RUNS,
    );
  });
});

// ---- scan policies ----

const vulnId = fc.oneof(
  fc.tuple(fc.integer({ min: 1999, max: 2030 }), fc.integer({ min: 1000, max: 9_999_999 })).map(([y, n]) => `CVE-${y}-${n}`),
  fc.array(word('23456789cfghjmpqrvwx', 4, 4), { minLength: 3, maxLength: 3 }).map((p) => `GHSA-${p.join('-')}`),
);
const realDate = fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10));
const severity = fc.constantFrom('unknown', 'low', 'medium', 'high', 'critical').chain((s) => fc.constantFrom(s, s.toUpperCase(), s[0].toUpperCase() + s.slice(1)));
const validPolicy = fc.record(
  {
    failOn: severity,
    onlyFixed: fc.boolean(),
    allow: fc.array(fc.record({ id: vulnId, reason: fc.string({ minLength: 3, maxLength: 200 }), expires: realDate }), { maxLength: 3 }),
    rescanAfter: validDuration,
  },
  { requiredKeys: [] },
);

describe('fuzz: scan policies', () => {
  const withPolicy = (policy: unknown) => sampleConfigText({ qaScan: JSON.stringify(policy) });

  test('every policy written to the documented rules is accepted', () => {
    fc.assert(
      fc.property(validPolicy, (policy) => {
        const cfg = parseConfig(withPolicy(policy));
        const scan = cfg.environments.qa.scan!;
        if (policy.failOn) expect(scan.failOn).toBe(policy.failOn.toUpperCase());
        expect(scan.allow).toHaveLength(policy.allow?.length ?? 0);
      }),
      RUNS,
    );
  });

  const invalidPolicyField = fc.oneof(
    fc.tuple(fc.constant('failOn'), fc.oneof(fc.constantFrom('', 'severe', 'none', 'highest', 'crit'), fc.integer())),
    fc.tuple(fc.constant('onlyFixed'), fc.constantFrom('yes', 'true', 1, 0)),
    fc.tuple(fc.constant('rescanAfter'), invalidDuration),
    fc.tuple(fc.constant('allow.0.id'), fc.oneof(fc.constantFrom('', 'x', 'CV', '-CVE-2024-1', 'CVE 2024 1'), word(LOWER, 65, 80))),
    fc.tuple(fc.constant('allow.0.reason'), fc.oneof(fc.constantFrom('', 'ok', 'no'), fc.string({ minLength: 501, maxLength: 600 }))),
    fc.tuple(
      fc.constant('allow.0.expires'),
      fc.oneof(
        fc.constantFrom('2024-02-30', '2023-02-29', '2024-13-01', '2024-00-10', '2024-01-32', '2024/01/01', '24-01-01', 'tomorrow', ''),
        realDate.map((d) => `${d}T00:00:00Z`),
      ),
    ),
  );

  test('every policy that breaks one rule is refused, naming the field', () => {
    fc.assert(
      fc.property(validPolicy, invalidPolicyField, (policy, [field, value]) => {
        const broken: Record<string, unknown> = { ...policy };
        if (field.startsWith('allow.0.')) broken.allow = [{ id: 'CVE-2024-1234', reason: 'not reachable', expires: '2030-01-01', [field.slice(8)]: value }];
        else broken[field] = value;
        refusedAt(() => parseConfig(withPolicy(broken)), `environments.qa.scan.${field}`);
      }),
      RUNS,
    );
  });
});

// ---- judge configs ----

const unit = (o: { min?: number; max?: number; minExcluded?: boolean; maxExcluded?: boolean } = {}) =>
  fc.double({ min: o.min ?? 0, max: o.max ?? 1, minExcluded: o.minExcluded, maxExcluded: o.maxExcluded, noNaN: true, noDefaultInfinity: true });
const ratio = fc.double({ min: 0, max: 1000, noNaN: true, noDefaultInfinity: true });
const effectSize = fc.oneof(
  fc.record({ measure: fc.constant('meanRatio'), allowedIncrease: ratio, allowedDecrease: ratio, criticalIncrease: ratio, criticalDecrease: ratio }, { requiredKeys: ['measure'] }),
  fc.record({ measure: fc.constant('cles'), allowedIncrease: unit(), allowedDecrease: unit(), criticalIncrease: unit(), criticalDecrease: unit() }, { requiredKeys: ['measure'] }),
  fc.record({ allowedIncrease: ratio, criticalDecrease: ratio }, { requiredKeys: [] }),
);
const groupName = word(LOWER, 1, 8);
const validJudge = fc
  .record({
    names: fc.uniqueArray(word(`${LOWER}-_`, 1, 12), { minLength: 1, maxLength: 4 }),
    groups: fc.uniqueArray(groupName, { minLength: 1, maxLength: 3 }),
  })
  .chain(({ names, groups }) =>
    fc.record(
      {
        judge: fc.record({ confidenceLevel: unit({ minExcluded: true, maxExcluded: true }), tolerance: fc.double({ min: 0, max: 5, noNaN: true }) }, { requiredKeys: [] }),
        metrics: fc.tuple(
          ...names.map((name) =>
            fc.record(
              {
                name: fc.constant(name),
                groups: fc.subarray(groups, { minLength: 1 }),
                direction: fc.constantFrom('increase', 'decrease', 'either'),
                critical: fc.boolean(),
                mustHaveData: fc.boolean(),
                nanStrategy: fc.constantFrom('remove', 'replace'),
                outliers: fc.record({ strategy: fc.constantFrom('keep', 'remove'), factor: fc.double({ min: 0.1, max: 10, noNaN: true }) }, { requiredKeys: [] }),
                effectSize,
              },
              { requiredKeys: ['name', 'groups'] },
            ),
          ),
        ),
        // Weights for some groups: none negative, not all zero; kept only for groups a metric belongs to (below).
        groupWeights: fc.tuple(...groups.map(() => fc.integer({ min: 0, max: 100 }))).map((ws) => Object.fromEntries(groups.map((g, i) => [g, ws[i] || 1]))),
        thresholds: fc.double({ min: 0, max: 100, noNaN: true }).chain((pass) => fc.record({ pass: fc.constant(pass), marginal: fc.double({ min: 0, max: pass, noNaN: true }) })),
      },
      { requiredKeys: ['metrics'] },
    ),
  )
  .map((c) => {
    const used = new Set(c.metrics.flatMap((m) => m.groups));
    return c.groupWeights ? { ...c, groupWeights: Object.fromEntries(Object.entries(c.groupWeights).filter(([g]) => used.has(g))) } : c;
  });

describe('fuzz: judge configs', () => {
  const series = fc.array(fc.oneof(fc.double({ min: 0, max: 1000, noNaN: true }), fc.constant(NaN)), { maxLength: 30 });

  test('every config written to the documented rules is accepted, and the judge gives a defined outcome', () => {
    fc.assert(
      fc.property(validJudge, fc.array(fc.tuple(series, series), { minLength: 4, maxLength: 4 }), (config, data) => {
        const r = judgeConfigSchema.safeParse(config);
        expect(r.error ? formatIssues(r.error) : '').toBe('');
        const parsed = r.data as JudgeConfig;
        const result = judge(parsed, parsed.metrics.map((m, i) => ({ name: m.name, baseline: data[i][0], canary: data[i][1] })));
        expect(['Pass', 'Marginal', 'Fail']).toContain(result.result);
        expect(result.score).toBeGreaterThanOrEqual(0);
        expect(result.score).toBeLessThanOrEqual(100);
      }),
      { ...RUNS, numRuns: 100 },
    );
  });

  const invalidJudge = fc.oneof(
    fc.tuple(fc.constant('judge.confidenceLevel'), fc.oneof(fc.constantFrom(0, 1, NaN, Infinity), unit({ min: 1, max: 10, minExcluded: true }), unit({ min: -10, max: 0, maxExcluded: true }))),
    fc.tuple(fc.constant('judge.tolerance'), fc.oneof(fc.constantFrom(NaN, Infinity, -Infinity), fc.double({ min: -100, max: 0, maxExcluded: true, noNaN: true }))),
    fc.tuple(fc.constantFrom('metrics.0.effectSize.allowedIncrease', 'metrics.0.effectSize.allowedDecrease', 'metrics.0.effectSize.criticalIncrease', 'metrics.0.effectSize.criticalDecrease'), fc.oneof(fc.constantFrom(NaN, Infinity, -Infinity), fc.double({ min: -1000, max: 0, maxExcluded: true, noNaN: true }))),
    fc.tuple(fc.constantFrom('metrics.0.effectSize.cles.allowedIncrease', 'metrics.0.effectSize.cles.criticalDecrease'), fc.double({ min: 1, max: 1000, minExcluded: true, noNaN: true })),
    fc.tuple(fc.constant('metrics.0.outliers.factor'), fc.oneof(fc.constantFrom(0, NaN), fc.double({ min: -10, max: 0, noNaN: true }))),
    fc.tuple(fc.constant('metrics.0.groups'), fc.constant([])),
    fc.tuple(fc.constant('metrics.0.direction'), fc.constantFrom('up', 'down', '', 'both')),
    fc.tuple(fc.constant('thresholds.pass'), fc.oneof(fc.double({ min: 100, max: 1e6, minExcluded: true, noNaN: true }), fc.constant(NaN))),
    fc.tuple(fc.constant('thresholds.marginal'), fc.double({ min: 100, max: 1e6, minExcluded: true, noNaN: true })),
    fc.tuple(fc.constant('groupWeights.g'), fc.double({ min: -100, max: 0, maxExcluded: true, noNaN: true })),
    fc.tuple(fc.constant('groupWeights.nosuchgroup'), fc.integer({ min: 1, max: 10 })),
  );

  test('every config that breaks one rule is refused, naming the field', () => {
    fc.assert(
      fc.property(invalidJudge, ([field, value]) => {
        const config: any = { metrics: [{ name: 'm', groups: ['g'] }], thresholds: { pass: 95, marginal: 75 } };
        let path = field;
        if (field.includes('.cles.')) {
          const key = field.split('.').pop()!;
          config.metrics[0].effectSize = { measure: 'cles', [key]: value };
          path = `metrics.0.effectSize.${key}`;
        } else {
          const parts = field.split('.');
          let o = config;
          for (const p of parts.slice(0, -1)) o = o[p] ??= {};
          o[parts[parts.length - 1]] = value;
          if (field === 'thresholds.pass' && typeof value === 'number' && !Number.isNaN(value)) config.thresholds.marginal = 0;
        }
        const r = judgeConfigSchema.safeParse(config);
        expect(r.success).toBe(false);
        const escaped = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        expect(formatIssues(r.error!)).toMatch(new RegExp(`^${escaped}: `, 'm'));
      }),
      RUNS,
    );
  });
});
