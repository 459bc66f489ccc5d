# syntax=docker/dockerfile:1
#
# Tessera's container image (docs/kubernetes.md "The image", docs/adr/0251-container-image.md).
#
#   docker build -t ghcr.io/tessera-broker/tessera:0.1.0 --build-arg VERSION=0.1.0 .
#
# Two stages. The builder (Debian bookworm, Node 20, python3/make/g++) installs from the
# lockfile, builds better-sqlite3's native addon from source against the local Node headers (no
# prebuilt binary is downloaded), compiles the TypeScript and the console, then drops the
# development dependencies. The final stage is distroless Node 20 on Debian 12 — the same glibc
# as bookworm, so the addon loads — with no shell, no package manager and no build tools; it
# runs as the numeric user 65532 (`nonroot`) and writes nothing to its root filesystem: Tessera
# writes only to its data directory and TMPDIR, both volumes (`tessera k8s manifests`).
#
# This image has not been built where Tessera is developed (no container engine there):
# test/k8s/deploy/dockerfile.test.ts checks this file statically and runs the final stage's
# exact command line on exactly the files it copies.

ARG NODE_MAJOR=20

FROM node:${NODE_MAJOR}-bookworm AS build
WORKDIR /build
# node-gyp uses the headers of the Node in this image instead of downloading them.
ENV npm_config_nodedir=/usr/local \
    npm_config_audit=false \
    npm_config_fund=false \
    npm_config_update_notifier=false
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` (the build) needs the sources, copied below; the only install
# scripts needed are rebuilt explicitly.
RUN npm ci --ignore-scripts
RUN npm rebuild better-sqlite3 --build-from-source && npm rebuild esbuild
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY console ./console
RUN npm run build
RUN npm prune --omit=dev --ignore-scripts
# Fail the build, not the pod, if the addon does not load or the entrypoint cannot run.
COPY bin ./bin
RUN node -e "new (require('better-sqlite3'))(':memory:').close()" && node bin/tessera.js --version

FROM gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tessera" \
      org.opencontainers.image.description="Credential broker for AI agents: workload identity, short-lived scoped credentials, Cedar policy, tamper-evident audit, one kill switch." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tessera-broker/tessera" \
      org.opencontainers.image.documentation="https://github.com/tessera-broker/tessera/blob/main/docs/kubernetes.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/nodejs${NODE_MAJOR}-debian12:nonroot"
WORKDIR /app
# Owned by root and read-only to the process: the code cannot be changed by what it runs.
# No src/: bin/tessera.js then always runs the compiled dist/.
COPY --from=build /build/package.json ./package.json
COPY --from=build /build/bin ./bin
COPY --from=build /build/dist/src ./dist/src
COPY --from=build /build/dist/console ./dist/console
COPY --from=build /build/node_modules ./node_modules
# MALLOC_ARENA_MAX=2: glibc gives each thread that allocates (V8's workers, libuv's pool) a malloc
# arena of its own and keeps each arena's peak; two arenas in all keep ≈ 25–30 MB less resident
# under load (docs/configuration.md "Memory", docs/adr/0290-server-memory-lazy-kubernetes-client.md).
# glibc reads it only when the process starts, so the image sets it; a deployment's env overrides it.
ENV NODE_ENV=production \
    TMPDIR=/tmp \
    MALLOC_ARENA_MAX=2
USER 65532:65532
EXPOSE 8200 8201
ENTRYPOINT ["/nodejs/bin/node", "/app/bin/tessera.js"]
CMD ["--help"]
