/**
 * The approvals web UI (`slipway ui`): an inbox from Temporal visibility, a live release page, and approve/reject
 * through the workflow's validated Updates. Nothing changes state on GET; every POST carries a CSRF token and comes
 * from this origin; the recorded approver is the authenticated identity, never a form field. Only releases on the
 * trusted orchestrator task queue are shown or decided on.
 */
import formbody from '@fastify/formbody';
import { WorkflowNotFoundError } from '@temporalio/client';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { identitySchema, nameSchema, parseDuration, type SlipwayConfig } from '../../model/config';
import type { ApprovalRequest } from '../../model/types';
import { ApprovalRefusedError, type SlipwayClient } from '../client';
import { keyDirOf } from '../../host/config';
import { tokenTtlSecondsOf } from '../../model/plan';
import { UsageError } from '../../model/errors';
import { edgeTokens } from '../identity/tokens';
import { registerTokenExchange } from './token-exchange';
import { registerHooks, type HookOptions } from './hooks';

/** The issuer name the UI signs decisions as (slipway.yaml identity.issuers must list it). */
export const UI_ISSUER = 'ui';
import { ASSETS } from './assets';
import { Authenticator, CSRF_COOKIE, isLoopback, SESSION_COOKIE, type Identity, type RequestLike } from './auth';
import { cookiesOf, setCookie } from './cookies';
import { defaultSecretFile, loadSessionSecrets, type SessionSecrets } from './session-secret';
import { esc, inboxPage, layout, loginPage, releasePage, statusFragment } from './views';
import { isReleaseId, parsePrincipal } from '../../model/identifiers';


export interface UiOptions {
  slipway: SlipwayClient;
  config: SlipwayConfig;
  namespace: string;
  temporalWebUrl?: string;
  /** The address the caller will listen on: local sign-in mode refuses anything but loopback. Default 127.0.0.1. */
  host?: string;
  /** Signs sessions and CSRF tokens; default: read from (or created in) ui.session.secretFile. */
  secret?: Buffer | SessionSecrets;
  /** How often the live release page re-reads the status. */
  pollMs?: number;
  /** Forge and registry webhooks (hooks.ts): secrets' variable names, the registry hook's principal. */
  hooks?: Partial<HookOptions>;
}

/** Users offered in local mode: configured ones, else everyone slipway.yaml names as an approver. */
export function localUsers(config: SlipwayConfig): string[] {
  if (config.ui?.auth.users?.length) return config.ui.auth.users;
  const users = new Set<string>();
  for (const members of Object.values(config.groups)) members.forEach((u) => users.add(u));
  for (const env of Object.values(config.environments)) env.approval?.approvers.map(parsePrincipal).forEach((p) => p.kind === 'user' && users.add(p.name));
  return [...users].sort();
}

/**
 * Local mode signs in whoever picks a name: it may only listen where nobody else can connect. Throws a UsageError
 * naming the field and the flag, before anything is started.
 */
export function assertListenAllowed(config: SlipwayConfig, host: string): void {
  if ((config.ui?.auth.mode ?? 'local') === 'local' && !isLoopback(host)) {
    throw new UsageError(
      `ui.auth.mode: local lets anyone who reaches the UI sign in as any user, so it listens on loopback only; --host ${host} is not a loopback address (use 127.0.0.1, or ui.auth.mode: proxy behind an authenticating proxy)`,
    );
  }
}

export const sessionMaxAgeMs = (config: SlipwayConfig): number => parseDuration(config.ui?.session.maxAge ?? '8h')!;

/** CSP: only this origin's static script and stylesheet; no inline code, no framing, forms post here only. */
export const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export async function buildUiServer(opts: UiOptions): Promise<FastifyInstance> {
  const authConfig = opts.config.ui?.auth ?? { mode: 'local' as const, userHeader: 'X-Forwarded-User', groupsHeader: 'X-Forwarded-Groups', trustedProxies: [] };
  const local = authConfig.mode === 'local';
  assertListenAllowed(opts.config, opts.host ?? '127.0.0.1');
  const maxAgeMs = sessionMaxAgeMs(opts.config);
  const secrets = opts.secret ?? loadSessionSecrets(opts.config.ui?.session.secretFile ?? defaultSecretFile(), maxAgeMs);
  const auth = new Authenticator({ ...authConfig, users: localUsers(opts.config) }, secrets, maxAgeMs);
  const allowedOrigins = new Set(opts.config.ui?.allowedOrigins ?? []);
  const webBase = opts.temporalWebUrl ?? opts.config.ui?.temporalWebUrl;
  const app = Fastify({ logger: false, trustProxy: false, bodyLimit: 16 * 1024 });
  await app.register(formbody);

  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-frame-options', 'DENY');
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'same-origin');
    reply.header('content-security-policy', CSP);
  });

  const refuse = (req: FastifyRequest, reply: FastifyReply, code: number, message: string) =>
    req.headers.accept?.includes('application/json')
      ? reply.code(code).send({ ok: false, message })
      : reply.code(code).type('text/html').send(layout('Refused', `<h1>Refused</h1><p data-testid="reason">${esc(message)}</p>`));

  /** Why a state-changing request is not from this origin's own pages, if it is not (CSRF token aside). */
  const crossSite = (req: FastifyRequest): string | undefined => {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return `cross-site request refused (Sec-Fetch-Site: ${String(site)})`;
    const origin = req.headers.origin;
    if (origin === undefined) return undefined; // not a browser, or an old one: the CSRF token still applies
    const host = req.headers.host ?? '';
    if (origin === `http://${host}` || origin === `https://${host}` || allowedOrigins.has(origin)) return undefined;
    return `cross-site request refused (Origin ${String(origin).slice(0, 200)} is not this server)`;
  };

  app.addHook('onRequest', async (req, reply) => {
    // Local mode has no real authentication: serve nobody but this machine, whatever address we were bound to.
    if (local && !isLoopback(req.socket.remoteAddress)) return refuse(req, reply, 403, 'local sign-in mode serves loopback clients only');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const why = crossSite(req);
      if (why) return refuse(req, reply, 403, why);
    }
    return undefined;
  });

  for (const a of Object.values(ASSETS)) {
    // The URL carries the content hash, so the file may be cached for a year.
    app.get(a.path, async (_req, reply) => reply.type(a.type).header('cache-control', 'public, max-age=31536000, immutable').send(a.body));
  }

  const csrfCookie = (req: FastifyRequest, reply: FastifyReply): string => {
    const cookies = cookiesOf(req);
    let c = cookies[CSRF_COOKIE];
    if (!c) {
      c = auth.newCsrfCookie();
      setCookie(reply, CSRF_COOKIE, c);
      cookies[CSRF_COOKIE] = c;
    }
    return c;
  };
  const asked = (req: FastifyRequest): RequestLike => ({ ip: req.ip, headers: req.headers, cookies: cookiesOf(req) });
  const whoFor = (req: FastifyRequest, reply: FastifyReply, id: Identity) => ({ user: id.user, csrf: auth.csrfToken(csrfCookie(req, reply), id.user), localMode: local });

  /** The identity, or a reply that says why there is none (sign-in page in local mode, 401 behind a proxy). */
  const requireIdentity = (req: FastifyRequest, reply: FastifyReply): Identity | undefined => {
    const { identity, reason } = auth.check(asked(req));
    if (identity) return identity;
    if (local && req.method === 'GET' && req.headers.accept?.includes('text/html')) {
      void reply.redirect('/login', 303);
    } else if (req.headers.accept?.includes('application/json')) {
      void reply.code(401).send({ ok: false, message: `Not signed in: ${reason}` });
    } else {
      void reply
        .code(401)
        .type('text/html')
        .send(layout('Not signed in', `<h1>Not signed in</h1><p data-testid="reason">${esc(reason)}.</p><p>${local ? '<a href="/login">Sign in</a> first.' : 'This UI takes identity from the authenticating proxy only.'}</p>`));
    }
    return undefined;
  };

  app.get('/healthz', async () => ({ ok: true }));

  app.get('/login', async (req, reply) => {
    if (!local) return reply.code(404).send();
    return reply.type('text/html').send(loginPage(localUsers(opts.config), auth.csrfToken(csrfCookie(req, reply), '')));
  });

  app.post('/login', async (req, reply) => {
    if (!local) return reply.code(404).send();
    const body = (req.body ?? {}) as Record<string, string>;
    if (!auth.checkCsrf(asked(req), body._csrf, '')) return reply.code(403).type('text/html').send(layout('Refused', '<h1>Refused</h1><p>Missing or invalid CSRF token.</p>'));
    const user = identitySchema.safeParse(body.user);
    if (!user.success || !localUsers(opts.config).includes(user.data)) {
      return reply.code(400).type('text/html').send(loginPage(localUsers(opts.config), auth.csrfToken(csrfCookie(req, reply), ''), 'Unknown user.'));
    }
    // Max-Age only tidies the browser; the expiry that counts is signed inside the value.
    setCookie(reply, SESSION_COOKIE, auth.session(user.data), Math.floor(maxAgeMs / 1000));
    return reply.redirect('/', 303);
  });

  app.post('/logout', async (req, reply) => {
    const id = requireIdentity(req, reply);
    if (!id) return reply;
    if (!auth.checkCsrf(asked(req), (req.body as Record<string, string>)?._csrf, id.user)) return refuse(req, reply, 403, 'missing or invalid CSRF token');
    // The cookie dies here, not just in this browser; a fresh CSRF cookie voids every token the old pages carried.
    auth.revoke(cookiesOf(req)[SESSION_COOKIE]);
    setCookie(reply, SESSION_COOKIE, '', 0);
    setCookie(reply, CSRF_COOKIE, auth.newCsrfCookie());
    return reply.redirect('/login', 303);
  });

  app.get('/', async (req, reply) => {
    const id = requireIdentity(req, reply);
    if (!id) return reply;
    const q = req.query as Record<string, string | undefined>;
    const service = q.service && opts.config.services[q.service] ? q.service : undefined;
    const env = q.env && opts.config.environments[q.env] ? q.env : undefined;
    const rows = (await opts.slipway.list({ awaitingApproval: true, service, environment: env, limit: 1000 })).filter((r) => r.inbox);
    if (req.headers.accept?.includes('application/json')) return rows;
    return reply
      .type('text/html')
      .send(inboxPage(rows, { service, env }, { services: Object.keys(opts.config.services), envs: Object.keys(opts.config.environments) }, whoFor(req, reply, id)));
  });

  const releaseId = (req: FastifyRequest, reply: FastifyReply): string | undefined => {
    const id = (req.params as { id: string }).id;
    if (isReleaseId(id)) return id;
    void reply.code(400).send('bad release id');
    return undefined;
  };

  /**
   * The release's status, or a 404 when there is none — or when it runs on another task queue: anyone may start a
   * look-alike there, answered by a worker of their own.
   */
  const statusOr404 = async (id: string, reply: FastifyReply) => {
    try {
      const d = await opts.slipway.handle(id).describe();
      if (d.taskQueue !== opts.slipway.taskQueue) {
        void reply.code(404).type('text/html').send(layout('Not found', `<h1>${esc(id)} is not a Slipway release</h1><p>It runs on task queue ${esc(d.taskQueue)}, which no trusted worker polls.</p>`));
        return undefined;
      }
      return await opts.slipway.status(id);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        void reply.code(404).type('text/html').send(layout('Not found', `<h1>No release ${esc(id)}</h1>`));
        return undefined;
      }
      throw err;
    }
  };

  const temporalWeb = (id: string) => (webBase ? `${webBase}/namespaces/${encodeURIComponent(opts.namespace)}/workflows/${encodeURIComponent(id)}` : undefined);

  app.get('/releases/:id', async (req, reply) => {
    const who = requireIdentity(req, reply);
    if (!who) return reply;
    const id = releaseId(req, reply);
    if (!id) return reply;
    const status = await statusOr404(id, reply);
    if (!status) return reply;
    const w = whoFor(req, reply, who);
    return reply.type('text/html').send(releasePage(id, status, { temporalWeb: temporalWeb(id), csrf: w.csrf }, w));
  });

  app.get('/releases/:id/status.json', async (req, reply) => {
    if (!requireIdentity(req, reply)) return reply;
    const id = releaseId(req, reply);
    if (!id) return reply;
    return (await statusOr404(id, reply)) ?? reply;
  });

  // Server-sent events: the status fragment, whenever it changes.
  app.get('/releases/:id/events', async (req, reply) => {
    if (!requireIdentity(req, reply)) return reply;
    const id = releaseId(req, reply);
    if (!id) return reply;
    if (!(await statusOr404(id, reply))) return reply;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    let last = '';
    let open = true;
    req.raw.on('close', () => (open = false));
    while (open) {
      try {
        const html = statusFragment(await opts.slipway.status(id));
        if (html !== last) res.write(`event: status\ndata: ${JSON.stringify(html)}\n\n`);
        last = html;
      } catch {
        res.write(': status unavailable\n\n');
      }
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 1000));
    }
    res.end();
  });

  /**
   * The one place the UI sends a decision: signed with the UI's own key (issuer "ui", pinned by the workers) for the
   * person this request authenticated — the workflow believes only that token.
   */
  // Local mode is a pick-a-name sign-in: its decisions are marked self-asserted (amr "local"), never verified.
  const uiTokens = edgeTokens(keyDirOf(opts.config), UI_ISSUER, local ? 'local' : 'proxy', tokenTtlSecondsOf(opts.config));
  const decide = (id: string, decision: 'approve' | 'reject', req: ApprovalRequest) => opts.slipway.decide(id, decision, req, uiTokens);
  // CI pipelines exchange their OIDC identity token here for a decision token (slipway.yaml ui.oidc).
  // Forge pull-request events and registry pushes: authenticated by their shared secrets, not by a session.
  await registerHooks(app, { slipway: opts.slipway, config: opts.config, tokens: uiTokens, hooks: opts.hooks });
  if (opts.config.ui?.oidc.length) registerTokenExchange(app, { issuers: opts.config.ui.oidc, tokens: edgeTokens(keyDirOf(opts.config), UI_ISSUER, 'oidc', tokenTtlSecondsOf(opts.config)) });

  app.post('/releases/:id/decide', async (req, reply) => {
    const who = requireIdentity(req, reply);
    if (!who) return reply;
    const id = releaseId(req, reply);
    if (!id) return reply;
    const body = (req.body ?? {}) as Record<string, string>;
    const wantsJson = req.headers.accept?.includes('application/json');
    const respond = async (code: number, ok: boolean, message: string) => {
      if (wantsJson) return reply.code(code).send({ ok, message });
      const status = await statusOr404(id, reply);
      if (!status) return reply;
      const w = whoFor(req, reply, who);
      return reply.code(code).type('text/html').send(releasePage(id, status, { temporalWeb: temporalWeb(id), csrf: w.csrf, message: { ok, text: message } }, w));
    };
    if (!auth.checkCsrf(asked(req), body._csrf, who.user)) return respond(403, false, 'Refused: missing or invalid CSRF token. Reload the page and try again.');
    if (body.decision !== 'approve' && body.decision !== 'reject') return respond(400, false, 'decision must be approve or reject');
    // The environment the page was shown for: a decision must not land on a gate its author never saw.
    const environment = nameSchema.safeParse(body.environment);
    if (!environment.success) return respond(400, false, 'Refused: environment is missing or malformed — the decision must name the environment it was made for. Reload the page.');
    const digest = /^sha256:[a-f0-9]{64}$/.test(body.digest ?? '') ? body.digest : undefined;
    if (!(await statusOr404(id, reply))) return reply;
    try {
      const r = await decide(id, body.decision, { approver: who.user, groups: who.groups, comment: body.comment?.slice(0, 2000) || undefined, digest, environment: environment.data });
      return respond(200, true, `${r.decision === 'approved' ? 'Approved' : 'Rejected'} for ${r.environment} as ${who.user}: ${r.received}/${r.required} approvals${r.complete ? ' — gate complete' : ''}.`);
    } catch (err) {
      if (err instanceof ApprovalRefusedError) return respond(409, false, `Refused: ${err.message}`);
      if (err instanceof WorkflowNotFoundError) return respond(404, false, 'No such release.');
      throw err;
    }
  });

  return app;
}
