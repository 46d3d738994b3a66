# syntax=docker/dockerfile:1
# Tributary engine image, built by `cdk deploy` (ecs.ContainerImage.fromAsset at the repo root).
#
# Build stage: esbuild bundles engine/main.ts into dist/engine.mjs and the app module
# (APP_MODULE, default functions/app.ts) into dist/app.mjs, with code splitting so both share one
# copy of the SDK and every dependency. The engine loads the app through TRIBUTARY_APP_MODULE
# (docs/architecture.md, "Environment variables"), which the runtime stage points at the bundled
# module: no TypeScript, no node_modules and no npm at run time.
FROM node:22 AS build
WORKDIR /build
# Dependencies first so this layer stays cached while the sources change.
COPY package.json package-lock.json ./
# No install script is needed to bundle: esbuild's binary comes from its optional dependency.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
ARG APP_MODULE=functions/app.ts
RUN test -f engine/main.ts && test -f "${APP_MODULE}" \
 && npx esbuild "engine=engine/main.ts" "app=${APP_MODULE}" \
      --bundle --splitting --format=esm --platform=node --target=node22 \
      --outdir=dist --out-extension:.js=.mjs --chunk-names=chunks/[name]-[hash] \
      --sourcemap --legal-comments=none \
      "--banner:js=import { createRequire as __tributaryCreateRequire } from 'node:module'; const require = __tributaryCreateRequire(import.meta.url);"

# Runtime stage: only the bundle, run as the unprivileged `node` user of the base image.
FROM node:22-slim
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps \
    TRIBUTARY_APP_MODULE=/app/dist/app.mjs \
    TRIBUTARY_HEALTH_PORT=8080 \
    TRIBUTARY_HEALTH_HOST=0.0.0.0
WORKDIR /app
COPY --from=build --chown=node:node /build/dist ./dist
USER node
EXPOSE 8080
# ECS sends SIGTERM, waits stopTimeout, then SIGKILL; the engine drains and leaves the group on SIGTERM.
STOPSIGNAL SIGTERM
CMD ["node", "dist/engine.mjs"]
