import { describe, expect, it } from 'vitest';
import { keySchemaProblem, tableIndexProblem } from '../../engine/internal/preflight.ts';
import { viewsTableInput } from '../../local/index.ts';

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

describe('tableIndexProblem', () => {
  // The table the local stack and the tests create, as DescribeTable shows it.
  const created = viewsTableInput('t');

  it('accepts the byKey and closing indexes of the layout', () => {
    expect(tableIndexProblem(created)).toBeUndefined();
  });

  it('names a missing index, as on a table made for the earlier layout', () => {
    const problem = tableIndexProblem({ ...created, GlobalSecondaryIndexes: created.GlobalSecondaryIndexes!.filter((i) => i.IndexName !== 'byKey') });
    expect(problem).toMatch(/^index byKey \(ixShard HASH S, ixKey RANGE S, KEYS_ONLY\) is missing/);
    expect(problem).toMatch(/earlier storage layout/);
    expect(tableIndexProblem({ ...created, GlobalSecondaryIndexes: undefined })).toMatch(/byKey .* is missing; index closing .* is missing/);
  });

  it('rejects an index with other keys, types or projection', () => {
    const indexes = created.GlobalSecondaryIndexes!;
    const allAttributes = indexes.map((i) => ({ ...i, Projection: { ProjectionType: 'ALL' as const } }));
    expect(tableIndexProblem({ ...created, GlobalSecondaryIndexes: allAttributes })).toMatch(/index byKey is ixShard HASH S, ixKey RANGE S, ALL, the layout needs/);
    const closeAtString = created.AttributeDefinitions!.map((a) => (a.AttributeName === 'closeAt' ? { ...a, AttributeType: 'S' as const } : a));
    expect(tableIndexProblem({ ...created, AttributeDefinitions: closeAtString })).toMatch(/index closing is closeShard HASH S, closeAt RANGE S/);
  });
});
