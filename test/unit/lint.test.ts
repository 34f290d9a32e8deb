/**
 * The lint rules that keep the house in shape: workflow code deterministic (no Node built-ins, activities only as
 * types, no zod), and imports running one way only (model ← workflows/activities ← workers ← client; nothing imports
 * bench/ or test/). Each rule has a planted violation that must fail and an allowed case that must pass.
 */
import { spawnSync } from 'node:child_process';
import { ROOT } from '../helpers';

type Case = { file: string; code: string };

// eslint's flat config is ESM, which jest's VM cannot import: one child node lints every case through eslint's own
// API (lintText with a file path, so the per-folder blocks apply as they would to a real file there).
const LINTER = `
const { ESLint } = require('eslint');
let input = '';
process.stdin.on('data', (c) => (input += c)).on('end', async () => {
  const eslint = new ESLint({ cwd: process.cwd() });
  const out = [];
  for (const { file, code } of JSON.parse(input)) {
    const [result] = await eslint.lintText(code, { filePath: file });
    out.push(result.messages.map((m) => m.message));
  }
  process.stdout.write(JSON.stringify(out));
});`;

function lintAll(cases: Case[]): string[][] {
  const r = spawnSync(process.execPath, ['-e', LINTER], { cwd: ROOT, input: JSON.stringify(cases), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`eslint failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const bad: Array<Case & { expected: RegExp[] }> = [
  {
    file: 'workflows/bad.ts',
    code: "import { readFileSync } from 'node:fs';\nimport crypto from 'crypto';\nimport { createBuilderActivities } from '../activities';\nimport Docker from 'dockerode';\nexport const x = [readFileSync, crypto, createBuilderActivities, Docker];\n",
    expected: [/'node:fs' import is restricted.*deterministic/, /'crypto' import is restricted/, /'\.\.\/activities' import is restricted.*types only/, /'dockerode' import is restricted.*No I\/O/],
  },
  // The split release workflow sits one folder deeper: the same rules hold there.
  { file: 'workflows/release/bad.ts', code: "import { runTool } from '../../activities/exec';\nexport const x = runTool;\n", expected: [/'\.\.\/\.\.\/activities\/exec' import is restricted.*types only/] },
  { file: 'workflows/bad.ts', code: "import { connect } from '../workers/connection';\nexport const x = connect;\n", expected: [/'\.\.\/workers\/connection' import is restricted.*never host\/, workers\/, client\//] },
  { file: 'workflows/bad.ts', code: "import { SlipwayClient } from '../client/client';\nexport const x = SlipwayClient;\n", expected: [/'\.\.\/client\/client' import is restricted.*never host\/, workers\/, client\//] },
  { file: 'workflows/bad.ts', code: "import { slipwayConfigSchema } from '../model/config';\nexport const x = slipwayConfigSchema;\n", expected: [/'\.\.\/model\/config' import is restricted.*carries zod/] },
  { file: 'workflows/bad.ts', code: "import { z } from 'zod';\nexport const x = z;\n", expected: [/'zod' import is restricted.*workflow bundle/] },
  { file: 'model/bad.ts', code: "import type { RegistryPort } from '../activities/ports';\nexport type X = RegistryPort;\n", expected: [/'\.\.\/activities\/ports' import is restricted.*ground floor/] },
  { file: 'model/bad.ts', code: "import { signalName } from '../workflows/messages';\nexport const x = signalName;\n", expected: [/'\.\.\/workflows\/messages' import is restricted.*ground floor/] },
  { file: 'model/bad.ts', code: "import Docker from 'dockerode';\nexport const x = Docker;\n", expected: [/'dockerode' import is restricted.*no I\/O/] },
  { file: 'model/rules.ts', code: "import { createHash } from 'node:crypto';\nexport const x = createHash;\n", expected: [/'node:crypto' import is restricted.*workflow bundle.*no Node built-ins/] },
  { file: 'model/scan-policy.ts', code: "import { z } from 'zod';\nexport const x = z;\n", expected: [/'zod' import is restricted.*no zod or yaml/] },
  { file: 'model/identifiers.ts', code: "import { nameSchema } from './config';\nexport const x = nameSchema;\n", expected: [/'\.\/config' import is restricted.*zod-carrying/] },
  { file: 'activities/bad.ts', code: "import { releaseWorkflow } from '../workflows/release';\nexport const x = releaseWorkflow;\n", expected: [/'\.\.\/workflows\/release' import is restricted.*activities\/ import only model\//] },
  { file: 'activities/traffic/bad.ts', code: "import { loadConfig } from '../../client/config';\nexport const x = loadConfig;\n", expected: [/'\.\.\/\.\.\/client\/config' import is restricted.*activities\/ import only model\//] },
  { file: 'activities/bad.ts', code: "import { createOrchestratorWorker } from '../workers/orchestrator';\nexport const x = createOrchestratorWorker;\n", expected: [/'\.\.\/workers\/orchestrator' import is restricted.*activities\//] },
  { file: 'workers/bad.ts', code: "import { loadConfig } from '../client/config';\nexport const x = loadConfig;\n", expected: [/'\.\.\/client\/config' import is restricted.*workers\/ never import client\//] },
  { file: 'workers/plan.ts', code: "import { renderStatus } from '../client/render';\nexport const x = renderStatus;\n", expected: [/'\.\.\/client\/render' import is restricted.*workers\/ never import client\//] },
  { file: 'host/bad.ts', code: "import { createDeployActivities } from '../activities';\nexport const x = createDeployActivities;\n", expected: [/'\.\.\/activities' import is restricted.*host\/ .*imports only model\//] },
  { file: 'activities/bad.ts', code: "import { loadConfig } from '../host/config';\nexport const x = loadConfig;\n", expected: [/'\.\.\/host\/config' import is restricted.*never workflows\/, host\//] },
  { file: 'workers/bad.ts', code: "import { run } from '../bench/run';\nexport const x = run;\n", expected: [/'\.\.\/bench\/run' import is restricted.*bench\/ or test\//] },
  { file: 'client/ui/bad.ts', code: "import { ROOT } from '../../test/helpers';\nexport const x = ROOT;\n", expected: [/'\.\.\/\.\.\/test\/helpers' import is restricted.*bench\/ or test\//] },
];

const good: Case[] = [
  { file: 'workflows/ok.ts', code: "import type { SlipwayActivities } from '../activities/contract';\nimport type { SlipwayConfig } from '../model/config';\nimport { proxyActivities } from '@temporalio/workflow';\nimport { IDENTITY_RE } from '../model/rules';\nimport type { z } from 'zod';\nexport type A = [SlipwayActivities, SlipwayConfig, z.ZodType];\nexport const x = [proxyActivities, IDENTITY_RE];\n" },
  { file: 'workflows/release/ok.ts', code: "import type { SlipwayActivities } from '../../activities/contract';\nimport { ApplicationFailure } from '../../model/errors';\nimport { approvalOutcome } from '../approval';\nexport type A = SlipwayActivities;\nexport const x = [ApplicationFailure, approvalOutcome];\n" },
  { file: 'model/types.ts', code: "import { z } from 'zod';\nimport { nameSchema } from './config';\nexport const x = [z, nameSchema];\n" },
  { file: 'model/plan.ts', code: "import { parse } from 'yaml';\nexport const x = parse;\n" },
  { file: 'model/scan-policy.ts', code: "import type { SlipwayConfig } from './config';\nimport { SEVERITIES } from './identifiers';\nexport type C = SlipwayConfig;\nexport const x = SEVERITIES;\n" },
  { file: 'activities/ok.ts', code: "import { readFileSync } from 'node:fs';\nimport { UsageError } from '../model/errors';\nexport const r = [readFileSync, UsageError];\n" },
  // `./client` inside activities/kubernetes/ is that folder's Kubernetes client, not the client/ folder.
  { file: 'activities/kubernetes/ok.ts', code: "import { kubeClient } from './client';\nimport type { TrafficRouter } from '../ports';\nimport { IDENTITY_RE } from '../../model/rules';\nexport type T = TrafficRouter;\nexport const x = [kubeClient, IDENTITY_RE];\n" },
  { file: 'workers/ok.ts', code: "import { Worker } from '@temporalio/worker';\nimport { createActivities } from '../activities';\nimport { BUILD_QUEUE } from '../model/queues';\nexport const x = [Worker, createActivities, BUILD_QUEUE];\n" },
  { file: 'workers/plan.ts', code: "import { loadConfig } from '../host/config';\nimport { keyDirFor } from '../host/keys';\nexport const x = [loadConfig, keyDirFor];\n" },
  { file: 'host/config.ts', code: "import { parseConfig } from '../model/plan';\nimport { readFileSync } from 'node:fs';\nexport const x = [parseConfig, readFileSync];\n" },
  { file: 'client/ok.ts', code: "import { Client } from '@temporalio/client';\nimport { statusQuery } from '../workflows/messages';\nimport { connect } from '../workers/connection';\nimport type { RegistryPort } from '../activities/ports';\nexport type R = RegistryPort;\nexport const x = [Client, statusQuery, connect];\n" },
];

let results: string[][];
beforeAll(() => {
  results = lintAll([...bad, ...good]);
}, 60_000);

test.each(bad.map((c, i) => [c.file, c.expected.length, i] as const))('planted violation in %s fails (%i message(s))', (_file, _n, i) => {
  expect(results[i]).toEqual(bad[i].expected.map((re) => expect.stringMatching(re)));
});

test.each(good.map((c, i) => [c.file, i] as const))('allowed imports in %s pass', (_file, i) => {
  expect(results[bad.length + i]).toEqual([]);
});
