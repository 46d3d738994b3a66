/**
 * Lambda entry of the live `subscribe` handler (routes `subscribe` and `unsubscribe`). It needs
 * the app's views (their `live.authorize` and their storage): the app module is bundled in
 * through the bare specifier `tributary-live-app`, which the deployment aliases to it
 * (`esbuild --alias:tributary-live-app=<app module>`).
 */
// @ts-ignore -- resolved by the bundler's alias, not by this package
import * as appModule from 'tributary-live-app';
import type { App } from '../../sdk/index.ts';
import { createLiveHandlers } from '../internal/handlers.ts';

const loaded = appModule as { app?: App; default?: App | { app?: App } };
const app = (loaded.app ?? (loaded.default as { app?: App } | undefined)?.app ?? loaded.default) as App;

/** Lambda entry point. */
export const handler = createLiveHandlers(app).subscribe;
