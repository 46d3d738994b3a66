/**
 * The example app's dashboard: `npm run dashboard:build` bundles it into dashboard/dist/, which
 * `tributary dev --dashboard dashboard/dist` (and so `npm run dev`) serves on loopback.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  // Served from the dashboard server's root.
  base: '/',
  resolve: {
    alias: { 'tributary/client': fileURLToPath(new URL('../client/index.ts', import.meta.url)) },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // Small enough to read in the browser's developer tools.
    sourcemap: true,
  },
  logLevel: 'warn',
});
