/**
 * `tributary/testing`: run an app's views and triggers in memory, with no Kafka, DynamoDB or
 * Lambda — push records, read the resulting state, the writes and the trigger calls (as Kafka
 * Streams' TopologyTestDriver does for a topology).
 *
 * @example
 * import { createTestDriver } from 'tributary/testing';
 * const driver = createTestDriver(app);
 * await driver.send('orders', [{ key: 'o-1', value: { type: 'placed', orderId: 'o-1', total: 30 } }]);
 * expect(driver.state('orderTotals', 'o-1')).toEqual({ total: 30 });
 */

// Test driver
export { createTestDriver, MemoryItemStore } from '../engine/index.ts';
export type { DeliveredChange, TestDriver, TestDriverOptions, TestRecord } from '../engine/index.ts';
