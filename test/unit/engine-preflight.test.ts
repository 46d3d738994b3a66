import { describe, expect, it } from 'vitest';
import { keySchemaProblem } from '../../engine/internal/preflight.ts';

describe('keySchemaProblem', () => {
  it('accepts the views table layout (pk HASH S, sk RANGE S)', () => {
    expect(
      keySchemaProblem({
        AttributeDefinitions: [
          { AttributeName: 'sk', AttributeType: 'S' },
          { AttributeName: 'pk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    ).toBeUndefined();
  });

  it('names what the table has and what the engine needs', () => {
    expect(
      keySchemaProblem({
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      }),
    ).toBe('key schema is id HASH S, the engine needs pk HASH S, sk RANGE S');
  });

  it('rejects the right names with the wrong types or roles', () => {
    const swapped = {
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' as const },
        { AttributeName: 'sk', AttributeType: 'S' as const },
      ],
      KeySchema: [
        { AttributeName: 'sk', KeyType: 'HASH' as const },
        { AttributeName: 'pk', KeyType: 'RANGE' as const },
      ],
    };
    expect(keySchemaProblem(swapped)).toMatch(/^key schema is sk HASH S, pk RANGE S/);
    expect(
      keySchemaProblem({
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'N' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    ).toMatch(/pk HASH N/);
    expect(keySchemaProblem({})).toMatch(/no key schema/);
  });
});
