/**
 * The UI's signing secret, kept in a 0600 file so sessions survive restarts. Rotation keeps the old secret as
 * `previous` — accepted for verification only, and only for one session lifetime after the rotation — so nobody
 * signed in is thrown out mid-decision, while a leaked old secret stops working once its sessions would have expired.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UsageError } from '../../model/errors';
import { slipwayHome } from '../stack/process';

export interface SessionSecrets {
  /** Signs new sessions and CSRF tokens. */
  current: Buffer;
  /** Verifies only, until the sessions it signed have expired. */
  previous?: Buffer;
}

interface SecretFile {
  version: 1;
  current: string;
  createdAt: string;
  previous?: string;
  rotatedAt?: string;
}

const FIELD = 'ui.session.secretFile';
export const defaultSecretFile = (): string => join(slipwayHome(), 'ui', 'session-secret');

const fresh = (previous?: string): SecretFile => {
  const now = new Date().toISOString();
  return { version: 1, current: randomBytes(32).toString('base64'), createdAt: now, ...(previous ? { previous, rotatedAt: now } : {}) };
};

/** Writes the file through a temp file so a concurrent reader never sees half a secret; false when it existed. */
function write(file: string, content: SecretFile, replace: boolean): boolean {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(content)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    // rename replaces in one step; link creates only if absent (two UIs starting at once agree on one secret).
    if (replace) renameSync(tmp, file);
    else linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
}

function read(file: string): SecretFile {
  const st = statSync(file);
  if (!st.isFile()) throw new UsageError(`${FIELD}: ${file} is not a regular file`);
  // A secret others can read lets them sign in as anyone: refuse rather than use it.
  if (st.mode & 0o077) throw new UsageError(`${FIELD}: ${file} is readable or writable by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 on it`);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) throw new UsageError(`${FIELD}: ${file} belongs to uid ${st.uid}, not to this user`);
  let parsed: SecretFile;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as SecretFile;
  } catch {
    throw new UsageError(`${FIELD}: ${file} is not a Slipway session-secret file (JSON)`);
  }
  for (const key of ['current', 'previous'] as const) {
    const v = parsed[key];
    if (v === undefined && key === 'previous') continue;
    if (typeof v !== 'string' || Buffer.from(v, 'base64').length < 32) throw new UsageError(`${FIELD}: ${file}: "${key}" must be at least 32 random bytes in base64`);
  }
  return parsed;
}

/** Reads the secret file, creating it (and its 0700 directory) on first use. */
export function loadSessionSecrets(file: string, maxAgeMs: number, now = Date.now()): SessionSecrets {
  try {
    statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    write(file, fresh(), false);
  }
  const f = read(file);
  const previousValid = f.previous && f.rotatedAt && Date.parse(f.rotatedAt) + maxAgeMs > now;
  return { current: Buffer.from(f.current, 'base64'), ...(previousValid ? { previous: Buffer.from(f.previous!, 'base64') } : {}) };
}

/** A new current secret; the old one verifies sessions for one more session lifetime. */
export function rotateSessionSecret(file: string): void {
  let old: SecretFile | undefined;
  try {
    old = read(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  write(file, fresh(old?.current), true);
  chmodSync(file, 0o600);
}
