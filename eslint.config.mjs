import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

// Which folder may import which (docs/architecture.md draws it):
//   model/      the ground floor: imports nothing of ours outside model/.
//   workflows/  model/ and @temporalio/workflow; activities as types only; deterministic (no Node, no I/O, no zod).
//   host/       model/ only: what this machine has on disk (slipway.yaml, key pairs), for workers/ and client/.
//   activities/ model/ and each other; never workflows/, host/, workers/, client/.
//   workers/    activities/, host/ and model/; never client/.
//   client/     anything of ours above; never bench/ or test/ (no production folder imports those).
// Relative specifiers are matched by how many `../` climb to the root, so `./client` inside
// activities/kubernetes/ is that folder's Kubernetes client, never the client/ folder.

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];
const ioLibraries = ['dockerode', '@kubernetes/*', '@azure/*', 'fastify', '@fastify/*', '@temporalio/worker', '@temporalio/client', '@temporalio/activity'];

// model/ files the workflow bundle carries (workflows/ import them at runtime), and the model/ files that carry zod
// and so may reach the bundle only as types. test/unit/workflow-bundle.test.ts checks the same list on the real bundle.
const BUNDLED_MODEL = ['rules', 'identifiers', 'requests', 'decision-token', 'scan-policy', 'queues', 'search-attributes', 'errors'];
const ZOD_MODEL = ['config', 'types', 'canary', 'plan', 'inbox'];

// Imports that break a rule today and are allowed by name until their code moves (a new one still fails). None now.
const GRANDFATHERED = {};

const DEPTHS = [1, 2, 3, 4]; // workflows/x.ts is depth 1, activities/traffic/x.ts depth 2, …
const up = (depth) => `(?:\\.\\./){${depth}}`;
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A specifier that climbs from a file `depth` folders down to the root and enters one of `folders`. */
const into = (depth, folders, allowed = []) =>
  `^${up(depth)}${allowed.length ? `(?!(?:${allowed.map(escape).join('|')})$)` : ''}(?:${folders.join('|')})(?:/|$)`;
const globAt = (folder, depth) => `${folder}/${'*/'.repeat(depth - 1)}*.ts`;

const NEVER_BENCH_OR_TEST = (d) => ({ regex: into(d, ['bench', 'test']), message: 'Production code never imports bench/ or test/.' });

/** The no-restricted-imports options for one file, by its folder and depth (and its own name, for the exceptions). */
function rulesFor(folder, depth, file) {
  const paths = [];
  const patterns = [];
  const allowed = (target) => GRANDFATHERED[file]?.[target] ?? [];
  if (folder === 'model') {
    patterns.push({ regex: `^${up(depth)}(?!model(?:/|$))`, message: 'model/ is the ground floor: it imports nothing of ours outside model/.' });
    patterns.push({ group: ioLibraries, message: 'model/ holds domain shapes: no I/O libraries.' });
    if (BUNDLED_MODEL.some((m) => file === `model/${m}.ts`)) {
      const why = 'The workflow bundle carries this model/ module';
      paths.push(...nodeBuiltins.map((name) => ({ name, message: `${why}: no Node built-ins.` })));
      patterns.push({ group: ['zod', 'zod/*', 'yaml'], allowTypeImports: true, message: `${why}: no zod or yaml (types only).` });
      patterns.push({ regex: `^\\./(?:${ZOD_MODEL.join('|')})$`, allowTypeImports: true, message: `${why}: import the zod-carrying model/ modules as types only.` });
    }
  }
  if (folder === 'workflows') {
    paths.push(...nodeBuiltins.map((name) => ({ name, message: 'Workflow code must be deterministic: no Node built-ins in workflows/.' })));
    patterns.push({ regex: into(depth, ['activities']), allowTypeImports: true, message: 'Import activities as types only (proxyActivities<typeof acts>()).' });
    patterns.push({ regex: into(depth, ['host', 'workers', 'client', 'bench', 'test']), message: 'workflows/ import only model/ (and activities as types): never host/, workers/, client/, bench/ or test/.' });
    patterns.push({ regex: `^${up(depth)}model/(?:${ZOD_MODEL.join('|')})$`, allowTypeImports: true, message: 'This model/ module carries zod: import its types only, so zod stays out of the workflow bundle.' });
    patterns.push({ group: [...ioLibraries, 'yaml'], message: 'No I/O libraries in workflows/.' });
    patterns.push({ group: ['zod', 'zod/*'], allowTypeImports: true, message: 'zod stays out of the workflow bundle: validate in activities or the client, import its types only.' });
  }
  if (folder === 'activities') {
    patterns.push({ regex: into(depth, ['workflows', 'host', 'workers', 'client', 'bench', 'test']), message: 'activities/ import only model/ and each other: never workflows/, host/, workers/, client/, bench/ or test/.' });
  }
  if (folder === 'host') {
    patterns.push({ regex: into(depth, ['workflows', 'activities', 'workers', 'client', 'bench', 'test']), message: 'host/ reads local files for workers/ and client/: it imports only model/.' });
  }
  if (folder === 'workers') {
    patterns.push({ regex: into(depth, ['client'], allowed('client')), message: 'workers/ never import client/: what both need belongs in model/ or host/.' });
    patterns.push(NEVER_BENCH_OR_TEST(depth));
  }
  if (folder === 'client') patterns.push(NEVER_BENCH_OR_TEST(depth));
  return { 'no-restricted-imports': ['error', { paths, patterns }] };
}

// One block per folder and depth; the files named above get blocks of their own after them (the later block wins).
const directionBlocks = [
  ...['model', 'host', 'workflows', 'activities', 'workers', 'client'].flatMap((folder) =>
    DEPTHS.map((depth) => ({ files: [globAt(folder, depth)], rules: rulesFor(folder, depth, undefined) }))),
  ...[...BUNDLED_MODEL.map((m) => `model/${m}.ts`), ...Object.keys(GRANDFATHERED)].map((file) => ({
    files: [file],
    rules: rulesFor(file.split('/')[0], file.split('/').length - 1, file),
  })),
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'services/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  ...directionBlocks,
);
