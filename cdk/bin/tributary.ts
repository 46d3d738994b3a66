/**
 * The CDK app: `npx cdk deploy` (cdk.json runs `npx tsx cdk/bin/tributary.ts`).
 * Deploys the app exported by `functions/app.ts`, configured by `-c tributary:*` context keys
 * (see `CONTEXT_KEYS` in cdk/index.ts and the README's Deploy section).
 */
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as cdk from 'aws-cdk-lib';
import type { App } from '../../sdk/index.ts';
import { DeploymentError, TributaryStack } from '../index.ts';
import { REPO_ROOT, DEFAULT_APP_MODULE } from '../internal/props.ts';

const cdkApp = new cdk.App();
const appModule: string = cdkApp.node.tryGetContext('tributary:appModule') ?? DEFAULT_APP_MODULE;
const handlersDir: string | undefined = cdkApp.node.tryGetContext('tributary:handlersDir');
const loaded: { app?: unknown } = await import(pathToFileURL(path.resolve(REPO_ROOT, appModule)).href);
if (!loaded.app) {
  throw new DeploymentError('INVALID_CONTEXT', `context tributary:appModule: ${appModule} does not export \`app\`; export the defineApp() result as \`app\``, { prop: 'tributary:appModule' });
}
const app = loaded.app as App;
const stackName: string = cdkApp.node.tryGetContext('tributary:stackName') ?? `Tributary-${app.name}`;

new TributaryStack(cdkApp, stackName, {
  app,
  appModule,
  handlersDir,
  description: `Tributary app ${app.name}: views table, engine on ECS Fargate, functions on Lambda`,
});
