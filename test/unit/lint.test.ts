/** The lint rule that keeps workflow code deterministic: no Node built-ins, activities only as types. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers';

// eslint's flat config is ESM, which jest's VM cannot import: run the real eslint on stdin instead.
const lint = (code: string, filePath: string): string[] => {
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'eslint', 'bin', 'eslint.js'), '--format', 'json', '--stdin', '--stdin-filename', filePath], { cwd: ROOT, input: code, encoding: 'utf8' });
  return JSON.parse(r.stdout)[0].messages.map((m: { message: string }) => m.message);
};

test('workflows/ may not import Node built-ins or activity code', () => {
  const messages = lint("import { readFileSync } from 'node:fs';\nimport crypto from 'crypto';\nimport { createBuilderActivities } from '../activities';\nimport Docker from 'dockerode';\nexport const x = [readFileSync, crypto, createBuilderActivities, Docker];\n", 'workflows/bad.ts');
  expect(messages).toEqual([
    expect.stringMatching(/'node:fs' import is restricted.*deterministic/),
    expect.stringMatching(/'crypto' import is restricted/),
    expect.stringMatching(/'\.\.\/activities' import is restricted.*types only/),
    expect.stringMatching(/'dockerode' import is restricted.*No I\/O/),
  ]);
});

test('type-only imports of activities are allowed in workflows/, and other folders may use Node', () => {
  expect(lint("import type { SlipwayActivities } from '../activities/contract';\nexport type A = SlipwayActivities;\n", 'workflows/ok.ts')).toEqual([]);
  expect(lint("import { readFileSync } from 'node:fs';\nexport const r = readFileSync;\n", 'activities/ok.ts')).toEqual([]);
});
