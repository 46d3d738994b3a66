/**
 * Amazon MSK IAM authentication for kafkajs: MSK's IAM listener (port 9098) accepts SASL
 * OAUTHBEARER with a token that is a SigV4-presigned `kafka-cluster:Connect` request, signed
 * with the task's AWS credentials. AWS's `aws-msk-iam-sasl-signer-js` builds that token; this
 * module turns it into the `oauthBearerProvider` kafkajs calls whenever it opens and
 * authenticates a broker connection.
 */
import type { OauthbearerProviderResponse } from 'kafkajs';
import { preview } from '../../sdk/contract/index.ts';
import { EngineError } from './errors.ts';

/** A token from the MSK IAM signer: the OAUTHBEARER value and when it expires (ms since the epoch). */
export interface MskAuthToken {
  readonly token: string;
  readonly expiryTime: number;
}

/**
 * Signs an MSK IAM auth token for a region, with credentials it finds itself; the shape of
 * `generateAuthToken` from `aws-msk-iam-sasl-signer-js`.
 */
export type MskAuthTokenSigner = (options: { region: string }) => Promise<MskAuthToken>;

/** kafkajs `sasl.oauthBearerProvider`. */
export type OAuthBearerProvider = () => Promise<OauthbearerProviderResponse>;

/**
 * Tokens live 15 minutes (less when the credentials expire sooner). MSK drops a connection when
 * its token expires, so a token is reused only while this much of its life is left: a new
 * connection then stays up at least this long, and the signer (which walks the AWS credential
 * chain, e.g. the ECS credentials endpoint) runs once per ten minutes rather than per connection.
 */
export const DEFAULT_MSK_TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;

/** Options of {@link mskIamTokenProvider}. */
export interface MskIamTokenProviderOptions {
  /**
   * Signs the tokens. Replace it to sign with other credentials (e.g. `generateAuthTokenFromRole`
   * from the same package, bound to a role) or to observe calls in a unit test.
   * @default - `generateAuthToken` of `aws-msk-iam-sasl-signer-js`: the default AWS credential chain
   */
  signer?: MskAuthTokenSigner;
  /**
   * A cached token is signed anew once less than this is left before it expires.
   * @default {@link DEFAULT_MSK_TOKEN_REFRESH_MARGIN_MS} (5 minutes)
   */
  refreshMarginMs?: number;
  /**
   * Clock, ms since the epoch.
   * @default Date.now
   */
  now?: () => number;
}

/**
 * The signer of `aws-msk-iam-sasl-signer-js`, loaded on first use: it pulls in the STS client
 * and the credential providers (~150 ms of startup), which deployments without MSK never need.
 * The package is CommonJS and loaders disagree on its shape: Node exposes the named exports and
 * `default`, tsx only the named exports, and the Dockerfile's esbuild bundle (a split chunk)
 * only `default`; so look in both places.
 */
const defaultSigner: MskAuthTokenSigner = async (options) => {
  type SignerModule = { generateAuthToken?: MskAuthTokenSigner; default?: { generateAuthToken?: MskAuthTokenSigner } };
  const loaded = (await import('aws-msk-iam-sasl-signer-js')) as SignerModule;
  const generateAuthToken = loaded.generateAuthToken ?? loaded.default?.generateAuthToken;
  if (generateAuthToken === undefined) {
    throw new Error('aws-msk-iam-sasl-signer-js does not export generateAuthToken; reinstall it (npm ci) or rebuild the image');
  }
  return generateAuthToken(options);
};

/**
 * Builds the kafkajs `oauthBearerProvider` for Amazon MSK IAM auth. Tokens are signed for
 * `region` (the MSK cluster's region) with the default AWS credential chain — on ECS, the task
 * role, which needs `kafka-cluster:Connect` and the topic/group actions on the cluster. A token
 * is cached and shared by connections until {@link MskIamTokenProviderOptions.refreshMarginMs}
 * before it expires; concurrent calls share one signing.
 *
 * The provider rejects with a retriable `KAFKA_FAILED` {@link EngineError} when signing fails
 * (usually: no AWS credentials found), which kafkajs reports as a failed connection.
 *
 * @throws EngineError `INVALID_CONFIG` when `region` is empty.
 * @example
 * const kafka = new Kafka({
 *   brokers: ['b-1.gym.abc123.c2.kafka.eu-west-1.amazonaws.com:9098'],
 *   ssl: true,
 *   sasl: { mechanism: 'oauthbearer', oauthBearerProvider: mskIamTokenProvider('eu-west-1') },
 * });
 */
export function mskIamTokenProvider(region: string, options: MskIamTokenProviderOptions = {}): OAuthBearerProvider {
  const trimmedRegion = region.trim();
  if (trimmedRegion === '') {
    throw new EngineError(
      'INVALID_CONFIG',
      `MSK IAM auth needs the AWS region of the MSK cluster, received ${preview(region)}; set AWS_REGION (e.g. "eu-west-1")`,
      { context: { variable: 'AWS_REGION' } },
    );
  }
  const signer = options.signer ?? defaultSigner;
  const refreshMarginMs = options.refreshMarginMs ?? DEFAULT_MSK_TOKEN_REFRESH_MARGIN_MS;
  const now = options.now ?? Date.now;
  let cached: MskAuthToken | undefined;
  let signing: Promise<MskAuthToken> | undefined;

  const sign = async (): Promise<MskAuthToken> => {
    try {
      const token = await signer({ region: trimmedRegion });
      cached = token;
      return token;
    } catch (error) {
      throw new EngineError(
        'KAFKA_FAILED',
        `could not sign an MSK IAM auth token for region "${trimmedRegion}": ${(error as Error)?.message ?? String(error)}; ` +
          'make AWS credentials available to the engine (on ECS: a task role allowed kafka-cluster:Connect on the cluster; locally: AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)',
        { retriable: true, cause: error, context: { region: trimmedRegion } },
      );
    }
  };

  return async () => {
    if (cached !== undefined && now() < cached.expiryTime - refreshMarginMs) return { value: cached.token };
    // Cleared in a callback (always asynchronous), so even a signer that throws synchronously is retried next call.
    signing ??= sign().finally(() => {
      signing = undefined;
    });
    return { value: (await signing).token };
  };
}
