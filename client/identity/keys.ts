/**
 * Ed25519 key pairs for the edges that sign decision tokens. On the local stack each pair lives in
 * `$SLIPWAY_HOME/keys/<name>.key` (0600, PKCS#8) and `<name>.pub` (SPKI); elsewhere the public key is configured.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const slipwayHome = (env: NodeJS.ProcessEnv = process.env): string => env.SLIPWAY_HOME ?? join(homedir(), '.cache', 'slipway');
export const defaultKeyDir = (env: NodeJS.ProcessEnv = process.env): string => join(slipwayHome(env), 'keys');

export interface KeyPairFiles {
  privateKeyFile: string;
  publicKeyFile: string;
}

export const keyFiles = (dir: string, name: string): KeyPairFiles => ({ privateKeyFile: join(dir, `${name}.key`), publicKeyFile: join(dir, `${name}.pub`) });

/** Creates the pair when missing (private key 0600 in a 0700 directory); returns its files. */
export function ensureKeyPair(dir: string, name: string): KeyPairFiles {
  const files = keyFiles(dir, name);
  if (existsSync(files.privateKeyFile) && existsSync(files.publicKeyFile)) return files;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  // `wx`: two processes racing to create the pair keep the first one.
  try {
    writeFileSync(files.privateKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    writeFileSync(files.publicKeyFile, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return files;
}

/** A private key file; refused when others may read it (anyone who can read it can decide as anyone it signs for). */
export function loadPrivateKey(file: string): KeyObject {
  const mode = statSync(file).mode & 0o077;
  if (mode !== 0) chmodSync(file, 0o600);
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
