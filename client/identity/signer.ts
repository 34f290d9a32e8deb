/**
 * The edge side of decision tokens: after an edge authenticated a person, it signs what they decided, bound to the
 * release, run, environment and digest (see workflows/decision-token.ts for the format and the checks).
 */
import { randomBytes, sign, type KeyObject } from 'node:crypto';
import { normaliseIdentity, type AuthMethod, type DecisionClaims } from '../../model/decision-token';
import { ensureKeyPair, loadPrivateKey } from '../../host/keys';

export type DecisionRequest = Omit<DecisionClaims, 'iss' | 'amr' | 'iat' | 'exp' | 'jti'>;

export class DecisionSigner {
  constructor(
    readonly issuer: string,
    private readonly key: KeyObject,
    readonly amr: AuthMethod,
    readonly ttlSeconds = 300,
    private readonly now: () => number = Date.now,
  ) {}

  static fromKeyDir(dir: string, issuer: string, amr: AuthMethod, ttlSeconds?: number): DecisionSigner {
    return new DecisionSigner(issuer, loadPrivateKey(ensureKeyPair(dir, issuer).privateKeyFile), amr, ttlSeconds);
  }

  sign(req: DecisionRequest, overrides: Partial<DecisionClaims> = {}): string {
    const iat = Math.floor(this.now() / 1000);
    const claims: DecisionClaims = {
      iss: this.issuer,
      amr: this.amr,
      ...req,
      sub: normaliseIdentity(req.sub),
      iat,
      exp: iat + this.ttlSeconds,
      jti: randomBytes(16).toString('base64url'),
      ...overrides,
    };
    const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const input = `${enc({ alg: 'EdDSA', typ: 'JWT', kid: this.issuer })}.${enc(claims)}`;
    return `${input}.${sign(null, Buffer.from(input), this.key).toString('base64url')}`;
  }
}
