/** docker-compose.yml cannot run here (no images can be pulled); `docker-compose config` validates it. */
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import { ALL_SEARCH_ATTRIBUTES } from '../../model/search-attributes';
import { ROOT } from '../helpers';

const config = (env: NodeJS.ProcessEnv) => execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config'], { cwd: ROOT, env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

test('docker-compose.yml is valid and wires Temporal, the registry and the worker', () => {
  const doc = parse(config({ REGISTRY_PASSWORD: 'from-env' }));
  expect(Object.keys(doc.services).sort()).toEqual(['registry', 'temporal', 'worker']);
  const command: string[] = doc.services.temporal.command;
  for (const sa of ALL_SEARCH_ATTRIBUTES) expect(command).toContain(`${sa.name}=Keyword`);
  expect(doc.services.worker.environment.TEMPORAL_ADDRESS).toBe('temporal:7233');
  expect(doc.services.registry.environment.REGISTRY_AUTH).toBe('htpasswd');
});

test('the registry password must come from the environment', () => {
  const env = { ...process.env };
  delete env.REGISTRY_PASSWORD;
  expect(() => execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config'], { cwd: ROOT, env, stdio: 'pipe' })).toThrow(/REGISTRY_PASSWORD/);
});
