import { readFileSync, statSync } from 'node:fs';
import { loadConfig } from '../../host/config';
import { regressionConfig } from '../../client/worker-command';

test('slipway dev --regression: the workers plan from slipway.yaml with the planted build arg, everything else unchanged', () => {
  const base = loadConfig('slipway.yaml');
  for (const [kind, arg, value] of [['errors', 'ERROR_RATE', '0.2'], ['latency', 'LATENCY_MS', '120']] as const) {
    const file = regressionConfig('slipway.yaml', kind);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const cfg = loadConfig(file);
    expect(cfg.services.delivery.build.args).toEqual({ ...base.services.delivery.build.args, [arg]: value });
    expect({ ...cfg, services: {} }).toEqual({ ...base, services: {} });
    expect(readFileSync(file, 'utf8')).toMatch(/^# slipway dev --regression/);
  }
});
