/**
 * The approvals web UI (`slipway ui`): an inbox from Temporal visibility, a live release page, and approve/reject
 * through the workflow's validated Updates. Nothing changes state on GET; every POST carries a CSRF token; the
 * recorded approver is the authenticated identity, never a form field.
 */
import formbody from '@fastify/formbody';
import { WorkflowNotFoundError } from '@temporalio/client';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { identitySchema, type SlipwayConfig } from '../../workflows/config';
import { ApprovalRefusedError, type SlipwayClient } from '../client';
import { Authenticator, CSRF_COOKIE, SESSION_COOKIE, type Identity, type RequestLike } from './auth';
import { cookiesOf, setCookie } from './cookies';
import { inboxPage, layout, loginPage, releasePage, statusFragment } from './views';

const RELEASE_ID = /^release:[a-z][a-z0-9-]{0,62}:[A-Za-z0-9._-]{1,130}$/;

export interface UiOptions {
  slipway: SlipwayClient;
  config: SlipwayConfig;
  namespace: string;
  temporalWebUrl?: string;
  /** Signs sessions and CSRF tokens; random per process unless given (then sessions survive restarts). */
  secret?: Buffer;
  /** How often the live release page re-reads the status. */
  pollMs?: number;
}

/** Users offered in local mode: configured ones, else everyone slipway.yaml names as an approver. */
export function localUsers(config: SlipwayConfig): string[] {
  if (config.ui?.auth.users?.length) return config.ui.auth.users;
  const users = new Set<string>();
  for (const members of Object.values(config.groups)) members.forEach((u) => users.add(u));
  for (const env of Object.values(config.environments)) env.approval?.approvers.filter((p) => !p.startsWith('group:')).forEach((p) => users.add(p.replace(/^user:/, '')));
  return [...users].sort();
}

export async function buildUiServer(opts: UiOptions): Promise<FastifyInstance> {
  const authConfig = opts.config.ui?.auth ?? { mode: 'local' as const, userHeader: 'X-Forwarded-User', groupsHeader: 'X-Forwarded-Groups', trustedProxies: [] };
  const auth = new Authenticator({ ...authConfig, users: localUsers(opts.config) }, opts.secret);
  const local = authConfig.mode === 'local';
  const webBase = opts.temporalWebUrl ?? opts.config.ui?.temporalWebUrl;
  const app = Fastify({ logger: false, trustProxy: false, bodyLimit: 16 * 1024 });
  await app.register(formbody);

  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-frame-options', 'DENY');
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'same-origin');
    // Inline scripts are the page's own; forms post only to this origin; nobody may frame the approve button.
    reply.header('content-security-policy', "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline' 'self'; form-action 'self'; frame-ancestors 'none'");
  });

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
    const id = auth.identify(asked(req));
    if (id) return id;
    if (local && req.method === 'GET' && req.headers.accept?.includes('text/html')) {
      void reply.redirect('/login', 303);
    } else {
      void reply
        .code(401)
        .type('text/html')
        .send(layout('Not signed in', `<h1>Not signed in</h1><p>${local ? '<a href="/login">Sign in</a> first.' : 'This UI takes identity from the authenticating proxy only.'}</p>`));
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
    setCookie(reply, SESSION_COOKIE, auth.session(user.data));
    return reply.redirect('/', 303);
  });

  app.post('/logout', async (req, reply) => {
    const id = requireIdentity(req, reply);
    if (!id) return reply;
    if (!auth.checkCsrf(asked(req), (req.body as Record<string, string>)?._csrf, id.user)) return reply.code(403).send('invalid CSRF token');
    setCookie(reply, SESSION_COOKIE, '', 0);
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
    if (RELEASE_ID.test(id)) return id;
    void reply.code(400).send('bad release id');
    return undefined;
  };

  const statusOr404 = async (id: string, reply: FastifyReply) => {
    try {
      return await opts.slipway.status(id);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        void reply.code(404).type('text/html').send(layout('Not found', `<h1>No release ${id.replace(/[<>&"]/g, '')}</h1>`));
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
    const digest = /^sha256:[a-f0-9]{64}$/.test(body.digest ?? '') ? body.digest : undefined;
    try {
      const r = await opts.slipway.decide(id, body.decision, { approver: who.user, groups: who.groups, comment: body.comment?.slice(0, 2000) || undefined, digest });
      return respond(200, true, `${r.decision === 'approved' ? 'Approved' : 'Rejected'} for ${r.environment} as ${who.user}: ${r.received}/${r.required} approvals${r.complete ? ' — gate complete' : ''}.`);
    } catch (err) {
      if (err instanceof ApprovalRefusedError) return respond(409, false, `Refused: ${err.message}`);
      if (err instanceof WorkflowNotFoundError) return respond(404, false, 'No such release.');
      throw err;
    }
  });

  return app;
}
