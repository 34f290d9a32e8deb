/**
 * Registry credentials, read on the worker only: from SLIPWAY_REGISTRY_<NAME>_USERNAME / _PASSWORD (or
 * _PASSWORD_FILE), else from the Docker config's `auths`. They never travel through workflow input or history.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface Credentials {
  username: string;
  password: string;
}

export interface CredentialStore {
  /** `name` is the registry's name in slipway.yaml (when known); `host` its host[:port]. */
  lookup(host: string, name?: string): Credentials | undefined;
}

/** The prefix of a registry's credential variables: SLIPWAY_REGISTRY_<NAME>_USERNAME / _PASSWORD. */
export const registryEnvKey = (name: string): string => `SLIPWAY_REGISTRY_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;

export class EnvCredentialStore implements CredentialStore {
  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly dockerConfigPath: string = join(env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json'),
  ) {}

  lookup(host: string, name?: string): Credentials | undefined {
    return (name && this.fromEnv(name)) || this.fromDockerConfig(host);
  }

  private fromEnv(name: string): Credentials | undefined {
    const k = registryEnvKey(name);
    const username = this.env[`${k}_USERNAME`];
    let password = this.env[`${k}_PASSWORD`];
    const file = this.env[`${k}_PASSWORD_FILE`];
    if (!password && file) password = readFileSync(file, 'utf8').trim();
    return username && password ? { username, password } : undefined;
  }

  private fromDockerConfig(host: string): Credentials | undefined {
    let config: any;
    try {
      config = JSON.parse(readFileSync(this.dockerConfigPath, 'utf8'));
    } catch {
      return undefined;
    }
    const entry = config?.auths?.[host] ?? config?.auths?.[`https://${host}`] ?? config?.auths?.[`http://${host}`];
    if (!entry) return undefined;
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
    if (typeof entry.auth === 'string') {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i > 0) return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
    }
    return undefined;
  }
}

