import { describe, expect, it } from 'vitest';
import { backoffMs, classifyAwsError, createRetry, isProgrammingError } from '../../sdk/contract/index.ts';

const awsError = (name: string, extra: Record<string, unknown> = {}): Error => Object.assign(new Error(`${name} happened`), { name, ...extra });

describe('classifyAwsError', () => {
  it('sorts AWS and network errors into kinds, and retries only throttling and transient failures', () => {
    const cases: [unknown, string, boolean][] = [
      [awsError('ConditionalCheckFailedException'), 'condition-failed', false],
      [awsError('ProvisionedThroughputExceededException'), 'throttled', true],
      [awsError('TooManyRequestsException'), 'throttled', true],
      [awsError('SomethingNew', { $retryable: { throttling: true } }), 'throttled', true],
      [awsError('ResourceNotFoundException'), 'not-found', false],
      [awsError('ValidationException'), 'invalid-request', false],
      [awsError('AccessDeniedException'), 'access-denied', false],
      [awsError('SomeClientFault', { $fault: 'client', $metadata: { httpStatusCode: 400 } }), 'invalid-request', false],
      [awsError('RequestTimeout', { $fault: 'client', $metadata: { httpStatusCode: 408 } }), 'transient', true],
      [awsError('InternalServerError', { $fault: 'server', $metadata: { httpStatusCode: 500 } }), 'transient', true],
      [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8000'), { code: 'ECONNREFUSED' }), 'transient', true],
      [awsError('TimeoutError'), 'transient', true],
      [new TypeError("Cannot read properties of undefined (reading 'pk')"), 'programming', false],
      [new Error('wrapped', { cause: new RangeError('Invalid array length') }), 'programming', false],
      // An HTML error page where JSON was expected: the SDK's SyntaxError carries the response.
      [Object.assign(new SyntaxError('Unexpected token < in JSON'), { $responseBodyText: '<html>502 Bad Gateway</html>' }), 'transient', true],
    ];
    expect(cases.map(([error]) => [classifyAwsError(error).kind, classifyAwsError(error).retriable])).toEqual(cases.map(([, kind, retriable]) => [kind, retriable]));
    expect(classifyAwsError(awsError('ValidationException')).name).toBe('ValidationException');
    expect(isProgrammingError(new SyntaxError('x'))).toBe(true);
    expect(isProgrammingError(awsError('ThrottlingException'))).toBe(false);
  });
});

describe('backoffMs', () => {
  it('draws a full-jitter wait below a ceiling that doubles up to the cap', () => {
    const top = () => 0.999_999;
    expect([1, 2, 3, 4, 10].map((attempt) => backoffMs(attempt, { initialMs: 100, maxMs: 1_000 }, top))).toEqual([99, 199, 399, 799, 999]);
    expect(backoffMs(5, { initialMs: 100, maxMs: 1_000 }, () => 0)).toBe(0);
  });
});

describe('createRetry', () => {
  const quick = { maxAttempts: 4, initialMs: 1, maxMs: 2 };

  it('retries retriable failures until the work succeeds', async () => {
    let calls = 0;
    const result = await createRetry(quick)(async (_bail, attempt) => {
      calls++;
      if (attempt < 3) throw awsError('ThrottlingException');
      return 'done';
    });
    expect([result, calls]).toEqual(['done', 3]);
  });

  it('throws the last error once the attempts run out', async () => {
    let calls = 0;
    const error = await createRetry(quick)(async () => {
      calls++;
      throw awsError('InternalServerError', { $fault: 'server' });
    }).catch((e: unknown) => e);
    expect([(error as Error).name, calls]).toEqual(['InternalServerError', 4]);
  });

  it('never retries a programming error or what the classifier refuses, and stops at bail()', async () => {
    for (const thrown of [new TypeError('bug'), awsError('ValidationException')]) {
      let calls = 0;
      const error = await createRetry(quick)(async () => {
        calls++;
        throw thrown;
      }).catch((e: unknown) => e);
      expect([error, calls]).toEqual([thrown, 1]);
    }
    let calls = 0;
    const reason = new Error('give up');
    const error = await createRetry({ ...quick, retriable: () => true })(async (bail) => {
      calls++;
      bail(reason);
    }).catch((e: unknown) => e);
    expect([error, calls]).toEqual([reason, 1]);
    // A custom test still never retries a bug.
    calls = 0;
    await createRetry({ ...quick, retriable: () => true })(async () => {
      calls++;
      throw new ReferenceError('x is not defined');
    }).catch(() => undefined);
    expect(calls).toBe(1);
  });
});
