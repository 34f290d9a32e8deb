/**
 * Ed25519 key pairs for the edges that sign decision tokens. On the local stack each pair lives in
 * `$SLIPWAY_HOME/keys/<name>.key` (0600, PKCS#8) and `<name>.pub` (SPKI); elsewhere the public key is configured.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const slipwayHome = (env: NodeJS.ProcessEnv = process.env): string => env.SLIPWAY_HOME ?? join(homedir(), '.cache', 'slipway');
export const defaultKeyDir = (env: NodeJS.ProcessEnv = process.env): string => join(slipwayHome(env), 'keys');

export interface KeyPairFiles {
  privateKeyFile: string;
  publicKeyFile: string;
}

/** slipway.yaml's identity.keyDir (absolute or ~/…), else $SLIPWAY_HOME/keys: one rule for workers, CLI and UI. */
export const keyDirFor = (identity: { keyDir?: string } | undefined, env: NodeJS.ProcessEnv = process.env): string =>
  identity?.keyDir ? identity.keyDir.replace(/^~(?=\/)/, env.HOME ?? homedir()) : defaultKeyDir(env);

export const keyFiles = (dir: string, name: string): KeyPairFiles => ({ privateKeyFile: join(dir, `${name}.key`), publicKeyFile: join(dir, `${name}.pub`) });

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * Creates the pair when missing (private key 0600 in a 0700 directory) and returns its files. Each file appears
 * whole (written aside, then hard-linked into place, which fails rather than overwrites), private key first, so
 * processes racing to create it all end up with the first one's pair.
 */
export function ensureKeyPair(dir: string, name: string): KeyPairFiles {
  const files = keyFiles(dir, name);
  if (existsSync(files.privateKeyFile) && existsSync(files.publicKeyFile)) return files;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(files.privateKeyFile)) {
    if (existsSync(files.publicKeyFile)) throw new Error(`${files.publicKeyFile} has no private key beside it: remove it to create a new pair`);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const tmp = `${files.privateKeyFile}.${process.pid}.${Date.now()}`;
    writeFileSync(`${tmp}.key`, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(`${tmp}.pub`, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 });
    try {
      linkSync(`${tmp}.key`, files.privateKeyFile);
      linkSync(`${tmp}.pub`, files.publicKeyFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      for (const f of [`${tmp}.key`, `${tmp}.pub`]) unlinkSync(f);
    }
  }
  // Another process created the private key: its public key follows at once.
  for (let i = 0; i < 50 && !existsSync(files.publicKeyFile); i++) sleep(20);
  if (!existsSync(files.publicKeyFile)) throw new Error(`${files.privateKeyFile} has no public key beside it (${files.publicKeyFile}); remove both to create a new pair`);
  return files;
}

/** A private key file; refused when others may read it (anyone who can read it can decide as anyone it signs for). */
export function loadPrivateKey(file: string): KeyObject {
  const mode = statSync(file).mode & 0o077;
  if (mode !== 0) throw new Error(`${file} may be read by others (mode ${(statSync(file).mode & 0o777).toString(8)}): chmod 600 it, and replace the key if others did read it`);
  const key = createPrivateKey(readFileSync(file));
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${file}: not an Ed25519 private key`);
  return key;
}

/** The 32 raw bytes of an Ed25519 public key, base64 — the form pinned into a release. */
export function rawPublicKey(key: KeyObject | string): string {
  const k = typeof key === 'string' ? publicKeyFromText(key) : key.type === 'private' ? createPublicKey(key) : key;
  if (k.asymmetricKeyType !== 'ed25519') throw new Error('not an Ed25519 public key');
  const jwk = k.export({ format: 'jwk' });
  return Buffer.from(jwk.x!, 'base64url').toString('base64');
}

/** A public key given as PEM (SPKI) or as base64 of its 32 raw bytes. */
export function publicKeyFromText(text: string): KeyObject {
  const t = text.trim();
  if (t.startsWith('-----BEGIN')) return createPublicKey(t);
  const raw = Buffer.from(t, 'base64');
  if (raw.length !== 32) throw new Error('must be a PEM public key or base64 of 32 raw Ed25519 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}
