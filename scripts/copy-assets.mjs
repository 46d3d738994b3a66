// Part of `npm run build`: copies the files the compiled modules read at run time (found
// next to its modules through import.meta.url) into dist/, where tsc does not put them.
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

const ASSETS = [
  'local/internal/apache-kafka/pom.xml',
  'local/internal/dynamodb/LoopbackDynamoDBLocal.java',
  // The engine image recipe TributaryApp builds for apps outside this repository.
  'engine/app.Dockerfile',
];

for (const asset of ASSETS) {
  const target = path.join('dist', asset);
  mkdirSync(path.dirname(target), { recursive: true });
  copyFileSync(asset, target);
}
