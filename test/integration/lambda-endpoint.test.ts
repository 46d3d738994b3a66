import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { InvokeCommand, type InvokeCommandOutput, type LambdaClient } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLambdaEndpoint, type LambdaContext, type LambdaEndpoint } from '../../local/index.ts';
import { lambdaClient, waitFor } from './helpers.ts';

// Every case goes through @aws-sdk/client-lambda against a real endpoint started here, with
// handlers registered in this process so the test can observe and steer them.

const decoder = new TextDecoder();
const payloadOf = (res: InvokeCommandOutput): unknown => (res.Payload ? JSON.parse(decoder.decode(res.Payload)) : undefined);
const invoke = (client: LambdaClient, input: ConstructorParameters<typeof InvokeCommand>[0]) => client.send(new InvokeCommand(input));

/** A promise the test resolves to let a waiting handler finish. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

class BookingRejectedError extends Error {
  override readonly name = 'BookingRejectedError';
}

describe('Lambda Invoke API endpoint', () => {
  let lambda: LambdaEndpoint;
  let client: LambdaClient;
  let functionsDir: string;
  const eventRuns: unknown[] = [];
  const eventGate = gate();
  let dryRunCalls = 0;
  let timedOutHandlerFinished = false;
  const timeoutGate = gate();

  beforeAll(async () => {
    functionsDir = mkdtempSync(path.join(tmpdir(), 'tributary-fns-'));
    writeFileSync(
      path.join(functionsDir, 'greet.ts'),
      `export const handler = async (event: { name: string }, context: { functionName: string }): Promise<string> =>\n` +
        `  \`hello \${event.name} from \${context.functionName}\`;\n`,
    );
    writeFileSync(path.join(functionsDir, 'noHandler.ts'), 'export const notTheHandler = () => 1;\n');
    writeFileSync(path.join(functionsDir, 'brokenImport.ts'), 'throw new Error("module init failed");\nexport const handler = () => 1;\n');

    lambda = await startLambdaEndpoint({
      functionsDir,
      maxConcurrency: 4,
      functions: {
        echoContext: async (event: unknown, context: LambdaContext) => ({
          event,
          functionName: context.functionName,
          functionVersion: context.functionVersion,
          awsRequestId: context.awsRequestId,
          invokedFunctionArn: context.invokedFunctionArn,
          memoryLimitInMB: context.memoryLimitInMB,
          logGroupName: context.logGroupName,
          logStreamName: context.logStreamName,
          remainingMs: context.getRemainingTimeInMillis(),
          callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
          clientContext: context.clientContext,
        }),
        reject: async (event: { classId: string }) => {
          throw new BookingRejectedError(`class ${event.classId} is full`);
        },
        recordEvent: async (event: unknown) => {
          await eventGate.promise;
          eventRuns.push(event);
        },
        countDryRun: () => {
          dryRunCalls++;
          return 'ran';
        },
        returnsUndefined: async () => undefined,
        bigResponse: async () => 'x'.repeat(6_300_000),
        chatty: async () => {
          console.log('booking %s confirmed', 'b-42');
          return 'ok';
        },
        legacyCallback: (event: { n: number }, _context: LambdaContext, callback?: (e?: unknown, r?: unknown) => void) => {
          setImmediate(() => callback?.(null, event.n * 2));
        },
      },
    });
    lambda.register(
      'slow',
      async () => {
        await timeoutGate.promise;
        timedOutHandlerFinished = true;
        return 'too late';
      },
      { timeoutMs: 300 },
    );
    client = lambdaClient(lambda.endpoint);
  });

  afterAll(async () => {
    timeoutGate.open();
    eventGate.open();
    client?.destroy();
    await lambda?.stop();
    rmSync(functionsDir, { recursive: true, force: true });
  });

  it('RequestResponse returns 200, $LATEST and the JSON result, with a real Lambda context', async () => {
    const res = await invoke(client, {
      FunctionName: 'echoContext',
      Payload: JSON.stringify({ bookingId: 'b-1', seats: 2 }),
      ClientContext: Buffer.from(JSON.stringify({ custom: { tenant: 'gym-7' } })).toString('base64'),
    });
    expect(res.StatusCode).toBe(200);
    expect(res.FunctionError).toBeUndefined();
    expect(res.ExecutedVersion).toBe('$LATEST');
    const body = payloadOf(res) as Record<string, unknown>;
    expect(body.event).toEqual({ bookingId: 'b-1', seats: 2 });
    expect(body.functionName).toBe('echoContext');
    expect(body.functionVersion).toBe('$LATEST');
    expect(body.awsRequestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(body.invokedFunctionArn).toBe('arn:aws:lambda:us-east-1:000000000000:function:echoContext');
    expect(body.memoryLimitInMB).toBe('128');
    expect(body.logGroupName).toBe('/aws/lambda/echoContext');
    expect(body.logStreamName).toMatch(/^\d{4}\/\d{2}\/\d{2}\/\[\$LATEST\][0-9a-f]{32}$/);
    expect(body.remainingMs).toBeGreaterThan(0);
    expect(body.remainingMs).toBeLessThanOrEqual(30_000);
    expect(body.callbackWaitsForEmptyEventLoop).toBe(true);
    expect(body.clientContext).toEqual({ custom: { tenant: 'gym-7' } });
  });

  it('accepts a function ARN and name:qualifier, and passes the qualifier into the invoked ARN', async () => {
    const byArn = await invoke(client, {
      FunctionName: 'arn:aws:lambda:us-east-1:000000000000:function:echoContext',
      Payload: '{}',
    });
    expect((payloadOf(byArn) as { invokedFunctionArn: string }).invokedFunctionArn).toBe(
      'arn:aws:lambda:us-east-1:000000000000:function:echoContext',
    );
    const byQualifier = await invoke(client, { FunctionName: 'echoContext:live', Payload: '{}' });
    expect(byQualifier.StatusCode).toBe(200);
    expect((payloadOf(byQualifier) as { invokedFunctionArn: string }).invokedFunctionArn).toBe(
      'arn:aws:lambda:us-east-1:000000000000:function:echoContext:live',
    );
  });

  it('returns null for a handler that returns nothing, and supports callback-style handlers', async () => {
    const none = await invoke(client, { FunctionName: 'returnsUndefined' });
    expect(none.StatusCode).toBe(200);
    expect(decoder.decode(none.Payload)).toBe('null');
    const legacy = await invoke(client, { FunctionName: 'legacyCallback', Payload: JSON.stringify({ n: 21 }) });
    expect(payloadOf(legacy)).toBe(42);
  });

  it('Event returns 202 before the handler runs, then runs it', async () => {
    const res = await invoke(client, {
      FunctionName: 'recordEvent',
      InvocationType: 'Event',
      Payload: JSON.stringify({ bookingId: 'b-async' }),
    });
    expect(res.StatusCode).toBe(202);
    // The handler is still parked on the gate, so the 202 came before it finished.
    expect(eventRuns).toEqual([]);
    eventGate.open();
    await waitFor(() => eventRuns.length === 1, { timeoutMs: 5_000, message: 'the Event invocation to run' });
    expect(eventRuns).toEqual([{ bookingId: 'b-async' }]);
  });

  it('DryRun returns 204 without running the handler', async () => {
    const res = await invoke(client, { FunctionName: 'countDryRun', InvocationType: 'DryRun', Payload: '{}' });
    expect(res.StatusCode).toBe(204);
    expect(dryRunCalls).toBe(0);
  });

  it('a thrown error is a 200 with FunctionError Unhandled and {errorType, errorMessage, trace}', async () => {
    const res = await invoke(client, { FunctionName: 'reject', Payload: JSON.stringify({ classId: 'spin-7' }) });
    expect(res.StatusCode).toBe(200);
    expect(res.FunctionError).toBe('Unhandled');
    const body = payloadOf(res) as { errorType: string; errorMessage: string; trace: string[] };
    expect(body.errorType).toBe('BookingRejectedError');
    expect(body.errorMessage).toBe('class spin-7 is full');
    expect(Array.isArray(body.trace)).toBe(true);
    expect(body.trace[0]).toContain('class spin-7 is full');
  });

  it('an unknown function is a ResourceNotFoundException (404)', async () => {
    const error = await invoke(client, { FunctionName: 'noSuchFunction', Payload: '{}' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'ResourceNotFoundException', $metadata: { httpStatusCode: 404 } });
    expect((error as Error).message).toContain('function:noSuchFunction');
  });

  it('a request over 6 MB is a RequestTooLargeException (413)', async () => {
    const payload = JSON.stringify({ blob: 'x'.repeat(6_300_000) });
    const error = await invoke(client, { FunctionName: 'echoContext', Payload: payload }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'RequestTooLargeException', $metadata: { httpStatusCode: 413 } });
  });

  it('a response over 6 MB is a Function.ResponseSizeTooLarge function error', async () => {
    const res = await invoke(client, { FunctionName: 'bigResponse' });
    expect(res.StatusCode).toBe(200);
    expect(res.FunctionError).toBe('Unhandled');
    expect(payloadOf(res)).toMatchObject({ errorType: 'Function.ResponseSizeTooLarge' });
  });

  it('a handler past its timeout is a Sandbox.Timedout function error', async () => {
    const started = Date.now();
    const res = await invoke(client, { FunctionName: 'slow', Payload: '{}' });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(res.StatusCode).toBe(200);
    expect(res.FunctionError).toBe('Unhandled');
    const body = payloadOf(res) as { errorType: string; errorMessage: string };
    expect(body.errorType).toBe('Sandbox.Timedout');
    expect(body.errorMessage).toMatch(/^RequestId: [0-9a-f-]{36} Error: Task timed out after 0\.30 seconds$/);
    expect(timedOutHandlerFinished).toBe(false);
  });

  it('loads <functionsDir>/<name>.ts on first call, and reports a missing handler export or a failing import', async () => {
    const res = await invoke(client, { FunctionName: 'greet', Payload: JSON.stringify({ name: 'Ada' }) });
    expect(res.FunctionError).toBeUndefined();
    expect(payloadOf(res)).toBe('hello Ada from greet');

    const noHandler = await invoke(client, { FunctionName: 'noHandler' });
    expect(noHandler.FunctionError).toBe('Unhandled');
    expect(payloadOf(noHandler)).toMatchObject({ errorType: 'Runtime.HandlerNotFound' });

    const broken = await invoke(client, { FunctionName: 'brokenImport' });
    expect(broken.FunctionError).toBe('Unhandled');
    expect(payloadOf(broken)).toMatchObject({ errorType: 'Runtime.ImportModuleError' });
    expect((payloadOf(broken) as { errorMessage: string }).errorMessage).toContain('module init failed');
  });

  it('LogType Tail returns the invocation log with the handler console output', async () => {
    const res = await invoke(client, { FunctionName: 'chatty', LogType: 'Tail' });
    expect(payloadOf(res)).toBe('ok');
    const logText = Buffer.from(res.LogResult ?? '', 'base64').toString('utf8');
    expect(logText).toMatch(/^START RequestId: [0-9a-f-]{36} Version: \$LATEST/);
    expect(logText).toMatch(/\tINFO\tbooking b-42 confirmed\n/);
    expect(logText).toMatch(/\nREPORT RequestId: [0-9a-f-]{36}\tDuration: /);
  });

  it('a payload that is not JSON is an InvalidRequestContentException (400)', async () => {
    const error = await invoke(client, { FunctionName: 'echoContext', Payload: '{not json' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'InvalidRequestContentException', $metadata: { httpStatusCode: 400 } });
  });

  it('throttles with TooManyRequestsException (429) past maxConcurrency', async () => {
    const hold = gate();
    let running = 0;
    lambda.register('hold', async () => {
      running++;
      await hold.promise;
      return 'released';
    });
    const held = [1, 2, 3, 4].map(() => invoke(client, { FunctionName: 'hold' }));
    await waitFor(() => running === 4, { timeoutMs: 5_000, message: '4 concurrent invocations to be running' });
    const error = await invoke(client, { FunctionName: 'hold' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'TooManyRequestsException', $metadata: { httpStatusCode: 429 } });
    hold.open();
    const results = await Promise.all(held);
    expect(results.map(payloadOf)).toEqual(['released', 'released', 'released', 'released']);
  });
});

describe('Lambda endpoint stop', () => {
  it('waits for running Event invocations, then refuses connections', async () => {
    let finished = false;
    const release = gate();
    const lambda = await startLambdaEndpoint({
      functions: {
        work: async () => {
          await release.promise;
          finished = true;
        },
      },
    });
    const client = lambdaClient(lambda.endpoint);
    try {
      const res = await invoke(client, { FunctionName: 'work', InvocationType: 'Event' });
      expect(res.StatusCode).toBe(202);
      let stopResolved = false;
      const stopped = lambda.stop().then(() => (stopResolved = true));
      await new Promise((resolve) => setImmediate(resolve));
      expect(stopResolved).toBe(false); // still waiting for the running invocation
      release.open();
      await stopped;
      expect(finished).toBe(true);
      const error = await invoke(lambdaClient(lambda.endpoint), { FunctionName: 'work' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect(String((error as NodeJS.ErrnoException).code ?? (error as Error).message)).toMatch(/ECONNREFUSED|ECONNRESET|socket hang up/);
    } finally {
      client.destroy();
      await lambda.stop();
    }
  });

  it('rejects invalid options with code INVALID_OPTION', async () => {
    await expect(startLambdaEndpoint({ port: 70_000 })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    await expect(startLambdaEndpoint({ functionsDir: '/definitely/not/here' })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
    const lambda = await startLambdaEndpoint();
    try {
      expect(() => lambda.register('bad name!', () => 1)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    } finally {
      await lambda.stop();
    }
  });
});
