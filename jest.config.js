/**
 * Four test tiers as jest projects (`--selectProjects <name>`, or `npm run test:<name>`):
 *   unit         test/unit: no global setup at all; needs nothing beyond `npm ci`.
 *   workflow     test/workflow: mocked activities; a Temporal server (the dev server, or the time-skipping test
 *                server a test file starts itself) and the workflow bundle.
 *   integration  test/integration: the whole local stack (Temporal, Docker, registries, kwok clusters, Trivy db).
 *   e2e          test/e2e: the whole stack and a browser.
 *   restart      test/restart: stops and starts the whole stack (`stack down`, `stack up`), so it must never run beside
 *                another test: it is a project only when named (`--selectProjects restart`), and scripts/test.sh runs
 *                it alone after the other tiers.
 * Each project names its own globalSetup: jest 29 runs a project's globalSetup only when at least one of that
 * project's tests is selected (the same module shared by two projects runs once), so the unit tier brings nothing
 * up and a workflow-only run brings up only Temporal. Type checking is `npm run typecheck`; jest only transpiles.
 */
const base = {
  testEnvironment: 'node',
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
};
const FULL_STACK = { globalSetup: '<rootDir>/test/setup/global-setup.ts', globalTeardown: '<rootDir>/test/setup/global-teardown.ts' };

module.exports = {
  testTimeout: 120000,
  projects: [
    { ...base, displayName: 'unit', roots: ['<rootDir>/test/unit'] },
    { ...base, displayName: 'workflow', roots: ['<rootDir>/test/workflow'], globalSetup: '<rootDir>/test/setup/workflow-setup.ts' },
    { ...base, displayName: 'integration', roots: ['<rootDir>/test/integration'], ...FULL_STACK },
    { ...base, displayName: 'e2e', roots: ['<rootDir>/test/e2e'], ...FULL_STACK },
    ...(process.argv.includes('restart') ? [{ ...base, displayName: 'restart', roots: ['<rootDir>/test/restart'], ...FULL_STACK }] : []),
  ],
};
