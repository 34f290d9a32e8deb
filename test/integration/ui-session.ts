/** A browser-like session against the approvals UI over real HTTP: keeps cookies, reads CSRF tokens off pages. */
import type { FastifyInstance } from 'fastify';
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket, type AddressInfo } from 'node:net';
import type { SlipwayClient } from '../../client/client';
import { SA } from '../../model/search-attributes';

export class Session {
  cookies: Record<string, string> = {};
  constructor(
    private readonly app: FastifyInstance,
    private readonly headers: Record<string, string> = {},
  ) {}

  async request(method: 'GET' | 'POST', url: string, form?: Record<string, string>, accept = 'text/html', extra: Record<string, string> = {}) {
    const { port } = this.app.server.address() as AddressInfo;
    const res = await fetch(`http://127.0.0.1:${port}${url}`, {
      method,
      redirect: 'manual',
      headers: {
        accept,
        ...this.headers,
        ...extra,
        cookie: Object.entries(this.cookies).map(([k, v]) => `${k}=${v}`).join('; '),
        ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      body: form ? new URLSearchParams(form).toString() : undefined,
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      this.cookies[pair.slice(0, i)] = pair.slice(i + 1);
    }
    return { statusCode: res.status, body: await res.text(), headers: Object.fromEntries(res.headers) };
  }

  csrfFrom(html: string): string {
    return /name="_csrf" value="([^"]+)"/.exec(html)![1];
  }

  async signIn(user: string): Promise<void> {
    const page = await this.request('GET', '/login');
    const res = await this.request('POST', '/login', { _csrf: this.csrfFrom(page.body), user });
    if (res.statusCode !== 303) throw new Error(`sign-in as ${user}: HTTP ${res.statusCode} ${res.body.slice(0, 200)}`);
  }
}

/**
 * What anyone with a CI credential can do: start a `releaseWorkflow` on a task queue no trusted worker polls, with
 * Slipway's search attributes and any memo. Nothing runs it; it only sits in visibility looking like a release.
 */
export async function startForgedRelease(
  slipway: SlipwayClient,
  opts: { version: string; service?: string; requester?: string; inbox?: unknown; taskQueue?: string },
): Promise<string> {
  const workflowId = `release:${opts.service ?? 'delivery'}:${opts.version}`;
  await slipway.client.workflow.start('releaseWorkflow', {
    args: [{ forged: true }],
    taskQueue: opts.taskQueue ?? 'untrusted-ci-queue',
    workflowId,
    memo: { inbox: opts.inbox },
    typedSearchAttributes: [
      { key: SA.service, value: opts.service ?? 'delivery' },
      { key: SA.version, value: opts.version },
      { key: SA.requester, value: opts.requester ?? 'ci-bot' },
      { key: SA.stage, value: 'approval:prod' },
      { key: SA.awaitingApproval, value: 'prod' },
    ],
  });
  return workflowId;
}

/** A well-formed inbox memo (what a real release at the prod gate writes), for forgeries that pass the schema. */
export const wellFormedInbox = (digest: string) => ({
  environment: 'prod',
  digest,
  requester: 'ci-bot',
  deadline: new Date(Date.now() + 3_600_000).toISOString(),
  received: 0,
  required: 1,
  approvers: ['group:release-managers'],
  references: { qa: `127.0.0.1:5000/delivery:v1.0.0@${digest}` },
  stages: [{ id: 'build', endedAt: new Date().toISOString() }],
});

/** True when the workflow's history holds an accepted Update (a decision that got past the validator). */
export async function hasAcceptedUpdate(slipway: SlipwayClient, workflowId: string): Promise<boolean> {
  const history = await slipway.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).some((e) => Boolean(e.workflowExecutionUpdateAcceptedEventAttributes));
}

/**
 * One request as if from `remoteAddress` (no network: a socket that only records what is written), for peers that
 * cannot be produced over loopback. Fastify's inject cannot be used: it loads an ESM-only cookie parser jest's VM rejects.
 */
export function requestFrom(app: FastifyInstance, remoteAddress: string, method: string, url: string): Promise<{ statusCode: number; body: string }> {
  return new Promise((resolve) => {
    const socket = new Socket();
    Object.defineProperty(socket, 'remoteAddress', { value: remoteAddress });
    const chunks: Buffer[] = [];
    socket.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      chunks.push(Buffer.from(chunk));
      const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      cb?.();
      return true;
    }) as typeof socket.write;
    const req = new IncomingMessage(socket);
    req.method = method;
    req.url = url;
    req.headers = { host: 'ui.example', accept: 'text/html' };
    req.push(null);
    const res = new ServerResponse(req);
    res.assignSocket(socket);
    res.on('finish', () => {
      const raw = Buffer.concat(chunks).toString();
      const [head, ...body] = raw.split('\r\n\r\n');
      resolve({ statusCode: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), body: body.join('\r\n\r\n') });
    });
    app.server.emit('request', req, res);
  });
}
