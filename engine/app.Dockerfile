# syntax=docker/dockerfile:1
# Engine image of an app built on the installed `tributary` package: what TributaryApp builds
# (ecs.ContainerImage.fromAsset) for a CDK app outside the Tributary repository. The package
# ships this file as node_modules/tributary/dist/engine/app.Dockerfile; the build context is the
# app's project root (package.json, lockfile, sources; node_modules and cdk.out excluded).
#
# Build stage: install the project as its lockfile says, then esbuild bundles the installed
# engine entry (tributary/engine/main) into dist/engine.mjs and the app module (build arg
# APP_MODULE, which the construct sets) into dist/app.mjs, with code splitting so both share one
# copy of the SDK and every dependency. No TypeScript, node_modules or npm at run time.
FROM node:22 AS build
WORKDIR /build
# Dependencies first so this layer stays cached while the sources change.
COPY package*.json ./
RUN if [ -f package-lock.json ]; then npm ci --ignore-scripts --no-audit --no-fund; \
    else npm install --ignore-scripts --no-audit --no-fund; fi
COPY . .
ARG APP_MODULE=src/app.ts
RUN test -f "${APP_MODULE}" || { echo "APP_MODULE ${APP_MODULE} is not in the build context; set the construct's appModule" >&2; exit 1; }
RUN npx --no-install esbuild "engine=node_modules/tributary/dist/engine/main.js" "app=${APP_MODULE}" \
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
