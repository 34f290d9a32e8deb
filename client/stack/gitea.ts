/**
 * The local Git server and forge for GitOps delivery: Gitea (built by tools/gitea/build.sh, no web assets) on
 * 127.0.0.1, state in ~/.cache/slipway/gitea. Two users: an admin (creates repositories, adds collaborators, owns
 * the GitOps repositories Slipway commits to) and an ordinary `reviewer` (merges pull requests in tests, as a
 * second person would). Their scoped access tokens are kept in a 0600 credentials file in the state dir and are
 * never logged or passed on a command line.
 * Idempotent like the other stack helpers: a running Gitea with the same configuration is reused, one started with
 * another configuration is restarted; users and tokens are created once and checked against the API on reuse.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { daemonPid, findBinary, slipwayHome, startDaemon, stateDir, stopDaemon, waitFor } from './process';

const run = promisify(execFile);

/** The pinned Gitea (tools/gitea/build.sh builds this version). */
export const GITEA_VERSION = '1.27.3';
/** Clear of the router's 19280–19292 and of Flux's 19310–19334 (client/stack/flux.ts). */
export const GITEA_PORT = 19300;
export const GITEA_ADMIN = 'slipway-admin';
export const GITEA_REVIEWER = 'reviewer';
const DAEMON = 'gitea';

/**
 * Token scopes. The admin's covers what Slipway's forge adapter does (repositories, pull requests, webhooks,
 * collaborators, users for tests); the reviewer's only what merging and reviewing a pull request needs.
 */
const SCOPES: Record<string, string> = {
  [GITEA_ADMIN]: 'write:admin,write:repository,write:issue,write:user,write:organization,read:misc',
  [GITEA_REVIEWER]: 'write:repository,write:issue,read:user',
};

export interface GiteaUser {
  username: string;
  token: string;
}

export interface GiteaEndpoint {
  /** Base URL, e.g. http://127.0.0.1:19300 (the API is under /api/v1, Git over HTTP under /<owner>/<repo>.git). */
  url: string;
  version: string;
  admin: GiteaUser;
  reviewer: GiteaUser;
  /** The 0600 JSON file holding the two users' tokens. */
  credentialsFile: string;
  pid: number;
  started: boolean;
  log: string;
}

export interface GiteaOptions {
  port?: number;
  /** Where tools/gitea/build.sh copied options/ and templates/ (default ~/.cache/slipway/gitea-static). */
  staticDir?: string;
}

export const giteaStaticDir = (): string => join(slipwayHome(), 'gitea-static');

export async function ensureGitea(opts: GiteaOptions = {}): Promise<GiteaEndpoint> {
  const port = opts.port ?? GITEA_PORT;
  const staticDir = opts.staticDir ?? giteaStaticDir();
  const bin = giteaBinary();
  if (!existsSync(join(staticDir, 'options', 'locale'))) {
    throw new Error(`no Gitea static root in ${staticDir}: run \`bash tools/gitea/build.sh ~/.cache/slipway/bin ${staticDir}\``);
  }
  const dir = stateDir('gitea');
  const ini = join(dir, 'app.ini');
  const text = appIni({ dir, port, staticDir, secrets: secretFiles(dir), runUser: userInfo().username });
  const fingerprint = createHash('sha256').update(JSON.stringify([bin, text])).digest('hex');
  const fingerprintFile = join(dir, 'config.sha256');
  const url = `http://127.0.0.1:${port}`;
  const log = join(stateDir('run'), `${DAEMON}.log`);

  let pid = daemonPid(DAEMON);
  let started = false;
  const sameConfig = existsSync(fingerprintFile) && readFileSync(fingerprintFile, 'utf8') === fingerprint;
  if (!(pid && sameConfig && (await versionOf(url)))) {
    if (pid) await stopDaemon(DAEMON);
    writeFileSync(ini, text, { mode: 0o600 });
    // A first start creates the schema (sqlite) before it listens; later starts take a few seconds.
    const daemon = startDaemon(DAEMON, bin, ['--config', ini, '--work-path', dir, 'web'], giteaEnv(dir));
    writeFileSync(fingerprintFile, fingerprint);
    pid = daemon.pid;
    started = true;
    await waitFor(`Gitea on ${url}`, async () => Boolean(await versionOf(url)), 120_000, daemon.log);
  }
  const version = (await versionOf(url))!;
  const creds = await ensureUsers(bin, ini, dir, url);
  return { url, version, admin: creds[GITEA_ADMIN], reviewer: creds[GITEA_REVIEWER], credentialsFile: credentialsPath(dir), pid, started, log };
}

export async function stopGitea(): Promise<boolean> {
  return stopDaemon(DAEMON);
}

function giteaBinary(): string {
  const own = join(slipwayHome(), 'bin', 'gitea');
  const bin = existsSync(own) ? own : findBinary('gitea');
  if (!bin) throw new Error('GitOps delivery needs gitea: run `bash tools/gitea/build.sh ~/.cache/slipway/bin` (scripts/install.sh does)');
  return bin;
}

/** Gitea's environment: HOME in the state dir, so a user's ~/.gitconfig never leaks into its Git operations. */
function giteaEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, HOME: join(dir, 'home'), GITEA_WORK_DIR: dir, USER: userInfo().username };
}

async function versionOf(url: string): Promise<string | undefined> {
  const res = await fetch(`${url}/api/v1/version`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined);
  if (res?.status !== 200) return undefined;
  return ((await res.json()) as { version?: string }).version;
}

/** SECRET_KEY and INTERNAL_TOKEN in 0600 files of their own (app.ini points at them): made once, kept across restarts. */
function secretFiles(dir: string): { secretKey: string; internalToken: string } {
  const secrets = join(dir, 'secrets');
  mkdirSync(secrets, { recursive: true, mode: 0o700 });
  const file = (name: string): string => {
    const f = join(secrets, name);
    if (!existsSync(f)) writeFileSync(f, randomBytes(32).toString('base64url'), { mode: 0o600 });
    return f;
  };
  return { secretKey: file('secret-key'), internalToken: file('internal-token') };
}

/**
 * The whole configuration. Loopback HTTP only (no SSH server, no LFS server), INSTALL_LOCK so no install page,
 * offline (no CDN avatars), no self-registration, in-memory cache and sessions, no cron jobs that phone out,
 * webhooks allowed to loopback (a Slipway endpoint on this machine receives them), no Actions or packages.
 * RUN_USER is whoever runs the stack; Gitea refuses root unless told so, and the local stack runs as root here.
 */
export function appIni(o: { dir: string; port: number; staticDir: string; secrets: { secretKey: string; internalToken: string }; runUser: string }): string {
  const d = (p: string) => join(o.dir, p);
  return `APP_NAME = Slipway Gitea
RUN_USER = ${o.runUser}
RUN_MODE = prod
WORK_PATH = ${o.dir}
${o.runUser === 'root' ? 'I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true\n' : ''}
[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = ${o.port}
DOMAIN = 127.0.0.1
ROOT_URL = http://127.0.0.1:${o.port}/
STATIC_ROOT_PATH = ${o.staticDir}
APP_DATA_PATH = ${d('data')}
DISABLE_SSH = true
START_SSH_SERVER = false
LFS_START_SERVER = false
OFFLINE_MODE = true

[database]
DB_TYPE = sqlite3
PATH = ${d('data/gitea.db')}
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = ${d('repositories')}
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY_URI = file://${o.secrets.secretKey}
INTERNAL_TOKEN_URI = file://${o.secrets.internalToken}
; webhooks (and nothing else that fetches URLs is enabled) may call Slipway on this machine
ALLOWED_HOST_LIST = loopback

[webhook]
DELIVER_TIMEOUT = 5

[service]
DISABLE_REGISTRATION = true
REQUIRE_SIGNIN_VIEW = false
DEFAULT_KEEP_EMAIL_PRIVATE = true

[oauth2]
ENABLED = false

[mailer]
ENABLED = false

[session]
PROVIDER = memory

[cache]
ADAPTER = memory

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[actions]
ENABLED = false

[packages]
ENABLED = false

[cron.update_checker]
ENABLED = false

[log]
MODE = console
LEVEL = Warn
ROOT_PATH = ${d('log')}
`;
}

const credentialsPath = (dir: string): string => join(dir, 'credentials.json');

/**
 * The admin and the reviewer, each with a working token. Tokens are shown once by Gitea, so they are kept in the
 * credentials file; one that no longer works (a wiped database, a revoked token) is replaced by a new one.
 * Passwords are random and not kept: everything Slipway and the tests do goes through tokens.
 */
async function ensureUsers(bin: string, ini: string, dir: string, url: string): Promise<Record<string, GiteaUser>> {
  const file = credentialsPath(dir);
  const saved = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { users?: Record<string, GiteaUser> }).users ?? {} : {};
  const gitea = (args: string[]) => run(bin, ['--config', ini, '--work-path', dir, ...args], { env: giteaEnv(dir), maxBuffer: 1 << 20 });
  const users: Record<string, GiteaUser> = {};
  let existing: Set<string> | undefined;
  for (const username of [GITEA_ADMIN, GITEA_REVIEWER]) {
    const have = saved[username];
    if (have && (await tokenUser(url, have.token)) === username) {
      users[username] = have;
      continue;
    }
    existing ??= await listUsers(gitea);
    if (!existing.has(username)) {
      await gitea(['admin', 'user', 'create', '--username', username, '--email', `${username}@slipway.invalid`, '--random-password', '--must-change-password=false', ...(username === GITEA_ADMIN ? ['--admin'] : [])]);
    }
    // Token names must be unique per user: a new name each time one is (re)made.
    const name = `slipway-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const { stdout } = await gitea(['admin', 'user', 'generate-access-token', '--username', username, '--token-name', name, '--scopes', SCOPES[username], '--raw']);
    const token = stdout.trim().split('\n').pop()!.trim();
    if (!/^[0-9a-f]{40}$/.test(token)) throw new Error(`gitea admin user generate-access-token for ${username} printed no token`);
    users[username] = { username, token };
  }
  writeFileSync(file, JSON.stringify({ url, users }, null, 2), { mode: 0o600 });
  chmodSync(file, 0o600); // writeFileSync's mode applies only when it creates the file
  return users;
}

async function listUsers(gitea: (args: string[]) => Promise<{ stdout: string }>): Promise<Set<string>> {
  const { stdout } = await gitea(['admin', 'user', 'list']);
  // A tab-separated table: ID, Username, Email, …; the first line is the header.
  return new Set(stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/)[1]).filter(Boolean));
}

/** The login a token belongs to, or undefined when Gitea does not accept it. */
async function tokenUser(url: string, token: string): Promise<string | undefined> {
  const res = await fetch(`${url}/api/v1/user`, { headers: { Authorization: `token ${token}` }, signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
  if (res?.status !== 200) return undefined;
  return ((await res.json()) as { login?: string }).login;
}
