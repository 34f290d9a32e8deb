/**
 * The workflow bundle as workers load it (bundleWorkflowCode, no server): it stays small and carries only workflow
 * code, the bundle-safe model/ modules and the workflow SDK — never zod, I/O libraries, Node built-ins or activity
 * implementations. The lint rules (eslint.config.mjs) stop such imports at the source; this checks the result.
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { builtinModules } from 'node:module';

// Measured when this test was written: 2,652,119 bytes, and 2,706,819 once workflows/release.ts became
// workflows/release/ (about 0.89 MB of code, the rest its inline source map). The limit leaves ~10% headroom over
// the latter; raise it on purpose, with the reason in the commit, never to make a red test green.
const MAX_BUNDLE_BYTES = 2_980_000;

// model/ modules the workflows import at runtime (zod-free); the rest of model/ reaches the bundle only as types.
const BUNDLED_MODEL = ['rules', 'identifiers', 'requests', 'decision-token', 'scan-policy', 'queues', 'search-attributes', 'errors'];
// Third-party code the workflow sandbox may run: the SDK's workflow side and what it, and decision tokens, pull in.
const ALLOWED_PACKAGES = /^\.\/node_modules\/(?:@temporalio\/(?:workflow|common)|nexus-rpc|ms|long|@noble\/(?:curves|hashes))\//;
const FORBIDDEN_PACKAGES = /^\.\/node_modules\/(?:zod|yaml|dockerode|@kubernetes|@azure|fastify|@temporalio\/(?:client|worker|activity|core-bridge|proto))\//;
// Temporal's bundler leaves these two hooks empty when no custom converter is configured.
const EXPECTED_IGNORED = new Set(['__temporal_custom_payload_converter', '__temporal_custom_failure_converter']);
const BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

/** The module paths webpack names in its `!*** path ***!` comment above each module it bundles. */
function bundledModules(code: string): string[] {
  return [...code.matchAll(/^\s*!\*\*\* (.+?) \*\*\*!$/gm)].map((m) => m[1]);
}

/** Every module the workflows must not carry, each with the reason. */
function forbiddenModules(modules: string[]): string[] {
  const problems: string[] = [];
  for (const id of modules) {
    const ignored = id.match(/^(.+) \(ignored\)$/);
    if (ignored) {
      if (!EXPECTED_IGNORED.has(ignored[1])) problems.push(`${id}: a module the bundler left out (a Node built-in?)`);
    } else if (BUILTINS.has(id) || id.startsWith('node:')) {
      problems.push(`${id}: a Node built-in`);
    } else if (FORBIDDEN_PACKAGES.test(id)) {
      problems.push(`${id}: a package the workflow sandbox must not carry`);
    } else if (id.startsWith('./node_modules/')) {
      if (!ALLOWED_PACKAGES.test(id)) problems.push(`${id}: a package not on the workflow bundle's list`);
    } else if (id.startsWith('./model/')) {
      if (!BUNDLED_MODEL.some((m) => id === `./model/${m}.ts`)) problems.push(`${id}: a model/ module that is not bundle-safe (zod?)`);
    } else if (!id.startsWith('./workflows/')) {
      problems.push(`${id}: not workflow code (activities/, workers/, client/ …)`);
    }
  }
  return problems;
}

describe('workflow bundle', () => {
  let code: string;
  beforeAll(async () => {
    const quiet = () => undefined;
    ({ code } = await bundleWorkflowCode({
      workflowsPath: require.resolve('../../workflows'),
      logger: { info: quiet, warn: console.warn, error: console.error, debug: quiet, trace: quiet, log: quiet } as never,
    }));
  }, 120_000);

  test(`stays under ${MAX_BUNDLE_BYTES} bytes`, () => {
    const bytes = Buffer.byteLength(code);
    const map = code.indexOf('//# sourceMappingURL=');
    console.log(`workflow bundle: ${bytes} bytes (${map < 0 ? bytes : Buffer.byteLength(code.slice(0, map))} without the source map), limit ${MAX_BUNDLE_BYTES}`);
    expect(bytes).toBeLessThanOrEqual(MAX_BUNDLE_BYTES);
  });

  test('carries only workflow code, bundle-safe model/ modules and the workflow SDK', () => {
    const modules = bundledModules(code);
    // The path comments are what this test reads: if the bundler stops writing them, fail rather than pass on nothing.
    expect(modules).toEqual(expect.arrayContaining(['./workflows/index.ts', './model/errors.ts', './node_modules/@temporalio/workflow/lib/index.js']));
    expect(forbiddenModules(modules)).toEqual([]);
  });
});

test('the bundle check catches what must stay out', () => {
  const planted = [
    '  !*** ./node_modules/zod/v4/classic/schemas.js ***!',
    '  !*** ./node_modules/yaml/dist/index.js ***!', '  !*** ./node_modules/@temporalio/client/lib/index.js ***!',
    '  !*** ./node_modules/left-pad/index.js ***!', '  !*** fs (ignored) ***!', '  !*** ./activities/exec.ts ***!',
    '  !*** ./client/client.ts ***!', '  !*** ./model/config.ts ***!',
    '  !*** ./model/rules.ts ***!', '  !*** ./workflows/release/index.ts ***!', '  !*** __temporal_custom_payload_converter (ignored) ***!',
  ].join('\n');
  expect(forbiddenModules(bundledModules(planted))).toEqual([
    expect.stringMatching(/^\.\/node_modules\/zod\/.*must not carry/),
    expect.stringMatching(/^\.\/node_modules\/yaml\/.*must not carry/),
    expect.stringMatching(/^\.\/node_modules\/@temporalio\/client\/.*must not carry/),
    expect.stringMatching(/^\.\/node_modules\/left-pad\/.*not on the workflow bundle's list/),
    expect.stringMatching(/^fs \(ignored\).*Node built-in/),
    expect.stringMatching(/^\.\/activities\/exec\.ts: not workflow code/),
    expect.stringMatching(/^\.\/client\/client\.ts: not workflow code/),
    expect.stringMatching(/^\.\/model\/config\.ts: .*not bundle-safe/),
  ]);
});
