/**
 * Where a client gets decision tokens: `LocalTokens` signs the OS user (or `--as`) with the local stack's key —
 * self-asserted, accepted only where slipway.yaml says `identity.local: true` — and `EdgeTokens` signs for a person
 * an edge (the UI) has authenticated.
 */
import type { AuthMethod } from '../../model/decision-token';
import { defaultKeyDir } from '../../host/keys';
import { DecisionSigner, type DecisionRequest } from './signer';

export interface DecisionTokens {
  token(req: DecisionRequest): Promise<string>;
}

export class SignerTokens implements DecisionTokens {
  constructor(private readonly signer: DecisionSigner) {}
  async token(req: DecisionRequest): Promise<string> {
    return this.signer.sign(req);
  }
}

/** The local stack's self-asserted identities: the key in `$SLIPWAY_HOME/keys/local.key` (created on first use). */
export function localTokens(keyDir = defaultKeyDir(), ttlSeconds = 300): DecisionTokens {
  return new SignerTokens(DecisionSigner.fromKeyDir(keyDir, 'local', 'local', ttlSeconds));
}

/** An edge's tokens (issuer name = its key pair's name), for people it authenticated by `amr`. */
export function edgeTokens(keyDir: string, issuer: string, amr: AuthMethod, ttlSeconds = 300): DecisionTokens {
  return new SignerTokens(DecisionSigner.fromKeyDir(keyDir, issuer, amr, ttlSeconds));
}
