/**
 * Webhooks into the UI server (issue #13): the forge's pull-request events wake the gitops release waiting on that
 * pull request, and the registry's push notifications start a release from the pushed image. Neither carries an
 * identity Slipway believes: a forge delivery must verify against the shared secret (HMAC or basic auth, per forge)
 * and a registry notification must carry the bearer secret; the release is then started for the hook's configured
 * principal, signed by the UI's own key. Secrets come from the server's environment (variable names below), never
 * from slipway.yaml, and are never logged or echoed. Bodies are read raw (signatures cover the exact bytes).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { SlipwayConfig } from '../../model/config';
import { repoCoordinates, type GitopsDelivery } from '../../model/gitops';
import { isReleaseId, releaseWorkflowId } from '../../model/identifiers';
import { NAME_RE, REPOSITORY_RE, versionProblem } from '../../model/rules';
import { failureOf } from '../../activities/gitops/errors';
import { forgeFor } from '../../activities/gitops/forge';
import { constantTimeEqual } from '../../activities/gitops/forge/webhook';
import { refSafe } from '../../activities/gitops/git';
import type { Forge } from '../../activities/gitops/ports';
import type { DecisionTokens } from '../identity/tokens';
import type { SlipwayClient } from '../client';

export interface HookOptions {
  /** The server's environment variable holding the forge webhooks' secret; unset → the forge hook is off (404). */
  forgeSecretEnv: string;
  /** The variable holding the registry's bearer secret; unset → the registry hook is off (404). */
  registrySecretEnv: string;
  /** Who a release started by a registry push is requested by (signed by the UI's issuer). */
  registryPrincipal: string;
  /** Largest body accepted (forge pull-request payloads run to tens of KB). */
  bodyLimit: number;
  env: NodeJS.ProcessEnv;
  /** One line per delivery, without secrets or bodies. */
  log?: (line: string) => void;
}

export const DEFAULT_HOOK_OPTIONS: HookOptions = {
  forgeSecretEnv: 'SLIPWAY_FORGE_WEBHOOK_SECRET',
  registrySecretEnv: 'SLIPWAY_REGISTRY_WEBHOOK_SECRET',
  registryPrincipal: 'registry-webhook',
  bodyLimit: 1024 * 1024,
  env: process.env,
};

/** What the hooks need of the client: tests pass a fake that records calls. */
export type HookClient = Pick<SlipwayClient, 'pullRequestChanged' | 'startSigned'>;

/** An environment's gitops delivery section, when it has one. */
export function gitopsDeliveryOf(config: SlipwayConfig, environment: string): GitopsDelivery | undefined {
  const delivery = config.environments[environment]?.delivery;
  return delivery?.type === 'gitops' ? delivery : undefined;
}

/**
 * The releases a head branch may belong to: slipway/<env>/<refSafe(workflow id)> (or slipway-revert/…). The ref form
 * turns ":" into "-", so "release-a-b-1.0.0" could be service a-b or a; each configured service whose round trip
 * gives back the same branch is a candidate (longest service name first).
 */
export function releasesForBranch(config: SlipwayConfig, environment: string, branch: string): string[] {
  const prefix = [`slipway/${refSafe(environment)}/`, `slipway-revert/${refSafe(environment)}/`].find((p) => branch.startsWith(p));
  if (!prefix) return [];
  const rest = branch.slice(prefix.length);
  return Object.keys(config.services)
    .sort((a, b) => b.length - a.length)
    .filter((service) => rest.startsWith(`release-${service}-`))
    .map((service) => releaseWorkflowId(service, rest.slice(`release-${service}-`.length)))
    .filter((id) => isReleaseId(id) && refSafe(id) === rest);
}

/** A push the registry reported, reduced to what a start needs. */
export interface RegistryPush {
  host: string;
  repository: string;
  tag?: string;
  digest?: string;
  mediaType?: string;
}

const MANIFEST_TYPES = /(manifest|image\.index|manifest\.list)/;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** The distribution registry's envelope ({ events: [...] }) or ACR's single event: push events only. */
export function registryPushes(body: unknown): RegistryPush[] {
  const b = body as { events?: unknown } | undefined;
  const events: unknown[] = Array.isArray(b?.events) ? b.events.slice(0, 100) : b && typeof b === 'object' ? [b] : [];
  const out: RegistryPush[] = [];
  for (const e of events as { action?: unknown; target?: Record<string, unknown>; request?: Record<string, unknown> }[]) {
    if (e?.action !== 'push' || typeof e.target !== 'object' || e.target === null) continue;
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    out.push({
      host: (str(e.request?.host) ?? '').toLowerCase(),
      repository: str(e.target.repository) ?? '',
      tag: str(e.target.tag),
      digest: str(e.target.digest),
      mediaType: str(e.target.mediaType),
    });
  }
  return out;
}

/** The service a push releases, or why it releases none. Only the first environment's repository counts: later
 * environments' repositories receive Slipway's own promotions, which must not start releases. */
export function serviceForPush(config: SlipwayConfig, push: RegistryPush): { service: string; version: string; image: string } | { ignored: string } {
  const first = (config.pipeline ?? Object.keys(config.environments))[0];
  const env = config.environments[first];
  const reg = config.registries[env.registry];
  const host = (reg.type === 'oci' ? reg.url : reg.loginServer).toLowerCase();
  const what = `${push.host}/${push.repository}${push.tag ? `:${push.tag}` : ''}`;
  if (push.mediaType && !MANIFEST_TYPES.test(push.mediaType)) return { ignored: `${what}: not a manifest (${push.mediaType})` };
  if (!push.tag) return { ignored: `${what}: no tag (the tag is the release's version)` };
  if (!push.digest || !DIGEST_RE.test(push.digest)) return { ignored: `${what}: no sha256 digest` };
  if (push.host !== host) return { ignored: `${what}: not ${first}'s registry ${host}` };
  if (!REPOSITORY_RE.test(push.repository)) return { ignored: `${what}: not a repository name` };
  const service = Object.entries(config.services).find(([name, s]) => `${env.imagePrefix}${s.repository ?? name}` === push.repository)?.[0];
  if (!service) return { ignored: `${what}: no service in slipway.yaml has this repository in ${first}` };
  const problem = versionProblem(push.tag);
  if (problem) return { ignored: `${what}: tag ${problem}` };
  return { service, version: push.tag, image: `${host}/${push.repository}:${push.tag}@${push.digest}` };
}

const flatHeaders = (req: FastifyRequest): Record<string, string | undefined> =>
  Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v[0] : v]));

/** Webhook verification needs no forge token: the adapter is built with a placeholder that is never sent. */
function forgeForHooks(delivery: GitopsDelivery): Forge {
  return forgeFor(delivery, { [delivery.forge.tokenEnv]: 'unused-by-webhook-verification' });
}

/** The forge's id for this delivery, so a redelivery is the same Update. */
const deliveryIdOf = (h: Record<string, string | undefined>): string | undefined =>
  [h['x-gitea-delivery'], h['x-github-delivery'], h['x-vss-deliveryid']].find((v) => v && /^[A-Za-z0-9-]{1,100}$/.test(v));

export async function registerHooks(app: FastifyInstance, opts: { slipway: HookClient; config: SlipwayConfig; tokens: DecisionTokens; hooks?: Partial<HookOptions> }): Promise<void> {
  const o: HookOptions = { ...DEFAULT_HOOK_OPTIONS, ...opts.hooks };
  const log = o.log ?? (() => undefined);
  const answer = (reply: FastifyReply, code: number, body: Record<string, unknown>) => reply.code(code).type('application/json').send(body);

  await app.register(async (scope) => {
    // Raw bytes for every content type here: signatures cover the body exactly as sent.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: o.bodyLimit }, (_req, body, done) => done(null, body));

    scope.post('/hooks/forge/:environment', { bodyLimit: o.bodyLimit }, async (req, reply) => {
      const environment = (req.params as { environment: string }).environment;
      const delivery = NAME_RE.test(environment) ? gitopsDeliveryOf(opts.config, environment) : undefined;
      if (!delivery) return answer(reply, 404, { ok: false, message: 'no gitops environment of that name' });
      const secret = o.env[o.forgeSecretEnv];
      if (!secret) return answer(reply, 404, { ok: false, message: `forge webhooks are off (the server's environment has no ${o.forgeSecretEnv})` });
      const headers = flatHeaders(req);
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const forge = forgeForHooks(delivery);
      try {
        forge.verifyWebhook(headers, body, secret);
      } catch (err) {
        if (failureOf(err) !== 'bad-signature') throw err;
        log(`forge hook ${environment}: refused, signature does not verify`);
        return answer(reply, 401, { ok: false, message: 'the delivery\'s signature does not verify' });
      }
      let event;
      try {
        event = forge.parseWebhook(headers, body);
      } catch {
        return answer(reply, 400, { ok: false, message: 'the delivery is not a forge event' });
      }
      if (!event) return answer(reply, 202, { ok: true, ignored: 'not a pull-request event' });
      const coords = delivery.forge.type === 'azure-repos' ? undefined : repoCoordinates(delivery.repository.url);
      const expected = coords ? `${coords.owner}/${coords.repo}` : decodeURIComponent(delivery.repository.url.replace(/\/+$/, '').split('/').pop() ?? '');
      if (event.repository && event.repository.toLowerCase() !== expected.toLowerCase()) return answer(reply, 202, { ok: true, ignored: `repository ${event.repository.slice(0, 200)} is not ${environment}'s` });
      const candidates = releasesForBranch(opts.config, environment, event.headBranch ?? '');
      if (!candidates.length) return answer(reply, 202, { ok: true, ignored: 'the head branch is not a Slipway release branch' });
      for (const id of candidates) {
        const r = await opts.slipway.pullRequestChanged(id, environment, event.pullRequest, deliveryIdOf(headers));
        if (r.outcome === 'not-found') continue;
        log(`forge hook ${environment}: pull request #${event.pullRequest} (${event.action}) → ${id}: ${r.outcome}`);
        if (r.outcome === 'refused') return answer(reply, 202, { ok: true, release: id, ignored: `the release refused the update: ${r.message}` });
        return answer(reply, 200, { ok: true, release: id, pullRequest: event.pullRequest });
      }
      return answer(reply, 202, { ok: true, ignored: `no running release ${candidates.join(' or ')}` });
    });

    scope.post('/hooks/registry', { bodyLimit: o.bodyLimit }, async (req, reply) => {
      const secret = o.env[o.registrySecretEnv];
      if (!secret) return answer(reply, 404, { ok: false, message: `registry webhooks are off (the server's environment has no ${o.registrySecretEnv})` });
      const given = /^Bearer (\S{1,4096})$/.exec(String(req.headers.authorization ?? ''))?.[1];
      if (!given || !constantTimeEqual(given, secret)) {
        log('registry hook: refused, no or wrong bearer secret');
        return answer(reply, 401, { ok: false, message: 'an Authorization: Bearer header with the hook\'s secret is required' });
      }
      let body: unknown;
      try {
        body = JSON.parse((Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)).toString('utf8'));
      } catch {
        return answer(reply, 400, { ok: false, message: 'the body is not JSON' });
      }
      const started: { workflowId: string; attached: boolean }[] = [];
      const ignored: string[] = [];
      const seen = new Set<string>();
      for (const push of registryPushes(body)) {
        const m = serviceForPush(opts.config, push);
        if ('ignored' in m) {
          ignored.push(m.ignored);
          continue;
        }
        // One envelope may list the same push twice (manifest and tag events): one start per release.
        if (seen.has(`${m.service}:${m.version}`)) continue;
        seen.add(`${m.service}:${m.version}`);
        const r = await opts.slipway.startSigned({ service: m.service, version: m.version, image: m.image, requester: o.registryPrincipal }, opts.tokens, { attachToEnded: true });
        log(`registry hook: ${m.image} → ${r.workflowId}${r.attached ? ' (already started: attached)' : ''}`);
        started.push({ workflowId: r.workflowId, attached: r.attached });
      }
      return answer(reply, started.length ? 200 : 202, { ok: true, started, ignored });
    });
  });
}
