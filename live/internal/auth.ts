/**
 * Who may connect: the `$connect` REQUEST authorizer verifies the connection's token (query
 * `token=`) as a JWT with `jose`, against the issuer's JWKS with issuer and audience checked, or,
 * for local development and tests, against a shared HMAC secret (HS256). It returns the IAM policy
 * API Gateway expects; the claims travel as `context.principal` to every later route.
 */
import { createRemoteJWKSet, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { LivePrincipal } from '../../sdk/index.ts';
import { LiveError } from './errors.ts';

/** How the authorizer checks tokens. */
export type LiveAuthOptions =
  | { readonly jwt: { readonly issuer: string; readonly audience: string; readonly jwksUrl?: string } }
  /** Local development and tests only: tokens signed with this shared secret (HS256). */
  | { readonly hmacSecret: string; readonly issuer?: string; readonly audience?: string };

/** The authorizer's answer, as API Gateway reads it. */
export interface AuthorizerPolicy {
  readonly principalId: string;
  readonly policyDocument: { readonly Version: '2012-10-17'; readonly Statement: readonly { Action: string; Effect: 'Allow' | 'Deny'; Resource: string }[] };
  readonly context: { readonly principal: string };
}

/** Builds the token check once (the JWKS is fetched and cached by `jose`). */
export function createTokenVerifier(options: LiveAuthOptions): (token: string) => Promise<LivePrincipal> {
  if ('hmacSecret' in options) {
    if (typeof options.hmacSecret !== 'string' || options.hmacSecret.length < 16) {
      throw new LiveError('INVALID_ARGUMENT', `live auth: hmacSecret must be a string of at least 16 characters, received ${options.hmacSecret === undefined ? 'undefined' : `${String(options.hmacSecret).length} characters`}`);
    }
    const key = new TextEncoder().encode(options.hmacSecret);
    return async (token) => {
      const { payload } = await jwtVerify(token, key, {
        algorithms: ['HS256'],
        ...(options.issuer !== undefined ? { issuer: options.issuer } : {}),
        ...(options.audience !== undefined ? { audience: options.audience } : {}),
      });
      return payload as LivePrincipal;
    };
  }
  const { issuer, audience, jwksUrl } = options.jwt ?? ({} as never);
  if (typeof issuer !== 'string' || issuer === '' || typeof audience !== 'string' || audience === '') {
    throw new LiveError('INVALID_ARGUMENT', `live auth: jwt needs an issuer and an audience, received ${JSON.stringify({ issuer, audience })}`);
  }
  const jwks = createRemoteJWKSet(new URL(jwksUrl ?? `${issuer.replace(/\/$/, '')}/.well-known/jwks.json`));
  return async (token) => (await jwtVerify(token, jwks, { issuer, audience })).payload as LivePrincipal;
}

/** The Allow policy of a verified principal. */
export function allowPolicy(principal: LivePrincipal, methodArn: string): AuthorizerPolicy {
  return {
    principalId: typeof principal.sub === 'string' ? principal.sub : 'anonymous',
    policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: methodArn }] },
    context: { principal: JSON.stringify(principal) },
  };
}

/** Options of {@link signLiveToken}. */
export interface SignLiveTokenOptions {
  /** The shared secret the local authorizer verifies with (`TRIBUTARY_LIVE_HMAC_SECRET`). */
  readonly secret: string;
  /** Claims, e.g. `{ sub: 'm-1' }`: the principal `authorize(principal, key)` gets. */
  readonly claims: JWTPayload;
  /** @default 3600 (one hour) */
  readonly expiresInS?: number;
}

/**
 * Signs a token for the local stack's authorizer (HS256). Local development and tests only: on
 * AWS, tokens come from your identity provider.
 *
 * @example
 * const token = await signLiveToken({ secret, claims: { sub: 'm-1' } });
 * new WebSocket(`${stack.live.url}?token=${token}`);
 */
export async function signLiveToken(options: SignLiveTokenOptions): Promise<string> {
  return new SignJWT(options.claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(`${options.expiresInS ?? 3600}s`)
    .sign(new TextEncoder().encode(options.secret));
}
