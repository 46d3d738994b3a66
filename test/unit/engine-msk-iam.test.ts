import { afterEach, describe, expect, it, vi } from 'vitest';
import type { KafkaConfig } from 'kafkajs';
import { EngineError, kafkaConfigFromEnv, mskIamTokenProvider } from '../../engine/index.ts';
import type { MskAuthToken, MskAuthTokenSigner } from '../../engine/index.ts';

const BROKERS = 'b-1.gym.abc123.c2.kafka.eu-west-1.amazonaws.com:9098';

/** A signer that records its calls and hands out numbered tokens expiring `ttlMs` after `clock()`. */
function recordingSigner(clock: () => number, ttlMs = 15 * 60_000) {
  const calls: { region: string }[] = [];
  const signer: MskAuthTokenSigner = async (options) => {
    calls.push(options);
    return { token: `token-${calls.length}`, expiryTime: clock() + ttlMs };
  };
  return { calls, signer };
}

function oauthProvider(sasl: KafkaConfig['sasl']) {
  if (sasl === undefined || !('oauthBearerProvider' in sasl) || typeof sasl.oauthBearerProvider !== 'function') {
    throw new Error(`expected an oauthbearer config, got ${JSON.stringify(sasl)}`);
  }
  return sasl.oauthBearerProvider as () => Promise<{ value: string }>;
}

describe('KAFKA_AUTH=msk-iam', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('builds a TLS + OAUTHBEARER kafkajs config with a token provider', () => {
    const config = kafkaConfigFromEnv({ KAFKA_BROKERS: BROKERS, KAFKA_AUTH: 'msk-iam', AWS_REGION: 'eu-west-1' });
    expect(config).toMatchObject({ brokers: [BROKERS], ssl: true, sasl: { mechanism: 'oauthbearer' } });
    expect(typeof oauthProvider(config.sasl)).toBe('function');
  });

  it('fails with a coded error saying to set AWS_REGION when the region is missing', () => {
    for (const region of [undefined, '', '  ']) {
      let thrown: unknown;
      try {
        kafkaConfigFromEnv({ KAFKA_BROKERS: BROKERS, KAFKA_AUTH: 'msk-iam', AWS_REGION: region });
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(EngineError);
      expect(thrown).toMatchObject({ code: 'INVALID_CONFIG', retriable: false, context: { variable: 'AWS_REGION' } });
      expect((thrown as Error).message).toMatch(/AWS_REGION is not set.*set AWS_REGION to that region/);
    }
    expect(() => mskIamTokenProvider(' ')).toThrowError(expect.objectContaining({ code: 'INVALID_CONFIG' }));
  });

  it('signs a real token for AWS_REGION with the bundled signer (credentials from the environment, no network)', async () => {
    // Static credentials come first in the default chain, so nothing reaches IMDS or STS.
    vi.stubEnv('AWS_PROFILE', undefined);
    vi.stubEnv('AWS_EC2_METADATA_DISABLED', 'true');
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIDEXAMPLE');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY');
    vi.stubEnv('AWS_SESSION_TOKEN', undefined);
    const config = kafkaConfigFromEnv({ KAFKA_BROKERS: BROKERS, KAFKA_AUTH: 'msk-iam', AWS_REGION: 'eu-west-1' });
    const { value } = await oauthProvider(config.sasl)();
    const url = new URL(Buffer.from(value, 'base64url').toString('utf8'));
    expect(url.hostname).toBe('kafka.eu-west-1.amazonaws.com');
    expect(url.searchParams.get('Action')).toBe('kafka-cluster:Connect');
    expect(url.searchParams.get('X-Amz-Credential')).toMatch(/^AKIDEXAMPLE\/\d{8}\/eu-west-1\/kafka-cluster\/aws4_request$/);
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('the provider calls the signer with the region and reuses the token until near expiry', async () => {
    let nowMs = 1_000_000;
    const clock = () => nowMs;
    const { calls, signer } = recordingSigner(clock);
    const provider = mskIamTokenProvider('eu-west-1', { signer, now: clock, refreshMarginMs: 60_000 });

    const concurrent = await Promise.all([provider(), provider(), provider()]);
    expect(concurrent).toEqual([{ value: 'token-1' }, { value: 'token-1' }, { value: 'token-1' }]);
    expect(calls).toEqual([{ region: 'eu-west-1' }]);

    nowMs += 13 * 60_000; // 2 minutes left, more than the margin: reused
    expect(await provider()).toEqual({ value: 'token-1' });
    nowMs += 61_000; // inside the margin: signed anew
    expect(await provider()).toEqual({ value: 'token-2' });
    expect(calls).toHaveLength(2);
  });

  it('turns a signing failure into a retriable KAFKA_FAILED error and retries on the next call', async () => {
    const tokens: MskAuthToken[] = [{ token: 'fresh', expiryTime: Date.now() + 15 * 60_000 }];
    let attempts = 0;
    const signer: MskAuthTokenSigner = (options) => {
      attempts += 1;
      // The first attempt throws synchronously, like a signer that validates before awaiting.
      if (attempts === 1) throw new Error(`Could not load credentials from any providers (${options.region})`);
      return Promise.resolve(tokens[0]!);
    };
    const provider = mskIamTokenProvider('us-east-1', { signer });
    await expect(provider()).rejects.toMatchObject({
      code: 'KAFKA_FAILED',
      retriable: true,
      context: { region: 'us-east-1' },
      message: expect.stringMatching(/Could not load credentials.*make AWS credentials available/),
    });
    expect(await provider()).toEqual({ value: 'fresh' });
    expect(attempts).toBe(2);
  });
});
