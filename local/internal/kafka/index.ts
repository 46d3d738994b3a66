// Embedded Kafka-protocol broker for development and tests (not production).
export { startKafkaBroker } from './broker.ts';
export type { KafkaBroker, KafkaBrokerOptions } from './broker.ts';
