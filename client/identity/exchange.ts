/**
 * CI's way to a decision token: its OIDC identity token, exchanged at the approvals UI's edge
 * (`POST /api/decision-tokens`), which verifies it and signs for that identity. The OIDC token comes from
 * `SLIPWAY_OIDC_TOKEN`, or from GitHub Actions' token service (`ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN`, job
 * permission `id-token: write`), requested for `SLIPWAY_OIDC_AUDIENCE` (default `slipway`).
 */
import type { DecisionTokens } from './tokens';
import type { DecisionRequest } from './signer';

export async function ciOidcToken(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.SLIPWAY_OIDC_TOKEN) return env.SLIPWAY_OIDC_TOKEN;
  if (env.ACTIONS_ID_TOKEN_REQUEST_URL && env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) {
    const url = new URL(env.ACTIONS_ID_TOKEN_REQUEST_URL);
    url.searchParams.set('audience', env.SLIPWAY_OIDC_AUDIENCE ?? 'slipway');
    const res = await fetch(url, { headers: { authorization: `Bearer ${env.ACTIONS_ID_TOKEN_REQUEST_TOKEN}` } });
    if (!res.ok) throw new Error(`GitHub Actions' OIDC token service answered ${res.status}`);
    return ((await res.json()) as { value: string }).value;
  }
  throw new Error('no CI identity: set SLIPWAY_OIDC_TOKEN (or run in GitHub Actions with id-token: write)');
}

export class ExchangeTokens implements DecisionTokens {
  constructor(
    private readonly edgeUrl: string,
    private readonly oidcToken: () => Promise<string> = () => ciOidcToken(),
  ) {}

  /** `sub` and `groups` are not sent: the edge takes them from the verified OIDC token. */
  async token(req: DecisionRequest): Promise<string> {
    const bindings: Partial<DecisionRequest> = { ...req };
    delete bindings.sub;
    delete bindings.groups;
    const res = await fetch(new URL('/api/decision-tokens', this.edgeUrl), {
      method: 'POST',
      headers: { authorization: `Bearer ${await this.oidcToken()}`, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(bindings),
    });
    const body = (await res.json().catch(() => ({}))) as { ok?: boolean; token?: string; message?: string };
    if (!res.ok || !body.token) throw new Error(`token exchange at ${this.edgeUrl} refused (${res.status}): ${body.message ?? 'no token'}`);
    return body.token;
  }
}
