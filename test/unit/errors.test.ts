import { describe, expect, it } from 'vitest';
import { DeploymentError } from '../../cdk/index.ts';
import { EngineError } from '../../engine/index.ts';
import { TriggerError } from '../../engine/internal/triggers/errors.ts';
import { LocalStackError } from '../../local/index.ts';
import { DefinitionError, isTributaryError, SdkError, TributaryError } from '../../sdk/index.ts';

describe('TributaryError', () => {
  const errors = [
    new SdkError('READ_FAILED', 'read failed', { retriable: true, context: { view: 'v' } }),
    new DefinitionError('bad view', { view: 'v' }),
    new EngineError('STORAGE_FAILED', 'storage failed', { retriable: true, context: { topic: 't', partition: 1 } }),
    new TriggerError('DISPATCHER_CLOSED', 'closed', { retriable: true }),
    new LocalStackError('JAVA_NOT_FOUND', 'no java', { context: { component: 'kafka' } }),
    new DeploymentError('INVALID_PROPS', 'bad props', { prop: 'kafka' }),
  ];

  it('is the one base of every module error, with its module, code, retriable flag, context and name', () => {
    expect(errors.map((e) => [e instanceof TributaryError, e instanceof Error, e.module, e.qualifiedCode, e.retriable, e.name])).toEqual([
      [true, true, 'sdk', 'sdk.READ_FAILED', true, 'SdkError'],
      [true, true, 'sdk', 'sdk.INVALID_DEFINITION', false, 'DefinitionError'],
      [true, true, 'engine', 'engine.STORAGE_FAILED', true, 'EngineError'],
      [true, true, 'triggers', 'triggers.DISPATCHER_CLOSED', true, 'TriggerError'],
      [true, true, 'local', 'local.JAVA_NOT_FOUND', false, 'LocalStackError'],
      [true, true, 'cdk', 'cdk.INVALID_PROPS', false, 'DeploymentError'],
    ]);
    expect(errors[2]!.context).toEqual({ topic: 't', partition: 1 });
    expect(errors[5]!.context).toEqual({ prop: 'kafka' });
  });

  it('matches by module and code, and never matches a programming error or a plain object', () => {
    const storage = errors[2]!;
    expect(isTributaryError(storage)).toBe(true);
    expect(isTributaryError(storage, 'engine')).toBe(true);
    expect(isTributaryError(storage, 'engine', 'STORAGE_FAILED', 'KAFKA_FAILED')).toBe(true);
    expect(isTributaryError(storage, 'engine', 'KAFKA_FAILED')).toBe(false);
    expect(isTributaryError(storage, 'sdk')).toBe(false);
    // The same code word in two modules is two codes.
    expect(isTributaryError(new TriggerError('DEAD_LETTER_FAILED', 'x'), 'engine', 'DEAD_LETTER_FAILED')).toBe(false);
    expect(isTributaryError(new TypeError('x'))).toBe(false);
    expect(isTributaryError({ module: 'engine', code: 'STORAGE_FAILED' })).toBe(false);
  });

  it('keeps the cause it translates', () => {
    const cause = new Error('ConditionalCheckFailedException');
    expect(new EngineError('WRITE_CONFLICT', 'lost', { cause }).cause).toBe(cause);
  });
});
