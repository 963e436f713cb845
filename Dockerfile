# syntax=docker/dockerfile:1
# `npm install` at the locked versions rather than `npm ci`: see .ci/run.
# Build: docker build -t heimdall:0.1.0 --build-arg BUILD=$(git rev-parse --short HEAD) .
# Without the embedded engine (server storage only): --build-arg OMIT_OPTIONAL=true

# The full image for the build: it has the C compiler for the native memory module.
FROM node:24-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
# The agent as one bundle (dist/bundle: esbuild, shared chunks for the rate-limit worker); types are
# checked by `npm test`, not here.
COPY scripts/build-agent.mjs scripts/build-native.mjs scripts/build-ui.mjs ./scripts/
RUN node scripts/build-agent.mjs
# dist/native/memory.node (src/telemetry/memory-native.c): the image must have it.
RUN node scripts/build-native.mjs && test -f dist/native/memory.node
COPY ui ./ui
RUN node scripts/build-ui.mjs

FROM node:24-bookworm-slim AS deps
ARG OMIT_OPTIONAL=false
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund --omit=dev --ignore-scripts $( [ "$OMIT_OPTIONAL" = "true" ] && echo --omit=optional ) && npm cache clean --force

FROM node:24-bookworm-slim
ARG BUILD=dev
ENV NODE_ENV=production HEIMDALL_BUILD=${BUILD}
WORKDIR /app
# jemalloc, at one path on every architecture: the Kubernetes manifests preload it where storage is a
# ClickHouse server (LD_PRELOAD and MALLOC_CONF there), so memory freed after a load goes back to the
# system within seconds. Not preloaded here: the embedded engine cannot run with it.
RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 && rm -rf /var/lib/apt/lists/* \
  && ln -s "$(find /usr/lib -name libjemalloc.so.2 -print -quit)" /usr/local/lib/libjemalloc.so.2
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
# Listeners on every interface and auth on with the token in $HEIMDALL_TOKEN (required):
#   docker run -e HEIMDALL_TOKEN=<16+ characters> -p 4317:4317 -p 4318:4318 -p 9464:9464 heimdall
COPY deploy/docker/heimdall.yaml /etc/heimdall/heimdall.yaml
ENV HEIMDALL_CONFIG=/etc/heimdall/heimdall.yaml
# Where the agent writes by default: storage.embedded.path ./data, ingest.queue.path ./queue,
# jobs.export_dir ./exports.
RUN mkdir -p /app/data /app/queue /app/exports && chown node:node /app/data /app/queue /app/exports
# Node's compile cache of the agent's modules, made once here: starts skip compiling them.
ENV NODE_COMPILE_CACHE=/app/.node-compile-cache
RUN node dist/bundle/main.js version >/dev/null && chown -R node:node /app/.node-compile-cache
# The image's unprivileged "node" user (uid 1000).
USER node
# gRPC (OTLP, heimdall.v1, Envoy RLS, health), OTLP/HTTP, admin (probes, /metrics, /status).
EXPOSE 4317 4318 9464
VOLUME ["/app/data"]
# Footprint (issue 16; bench:foundation starts the agent with these same settings, read from here):
# a young generation of at most 2 x 4 MiB (V8 sizes it up to 2 x 32 MiB on a large host, which then
# stays resident), and glibc malloc with 2 arenas and free memory over 128 KiB given back (the
# embedded engine allocates with glibc malloc from many threads). Blocks of 128 KiB and more (request
# bodies, insert payloads, compression buffers) are mapped on their own and unmapped when freed: with
# glibc's sliding threshold they came from the arenas and stayed there after a load (server transport,
# a minute after 60 s of load: 207 MiB, 157 MiB with this; idle 130). The agent sets V8's
# --heap-growing-percent=100 and --incremental-marking-soft-trigger=80 itself once started
# (telemetry/memory-return.ts): the first, as a flag here, slowed start-up by ~60 ms.
ENV MALLOC_ARENA_MAX=2 MALLOC_TRIM_THRESHOLD_=131072 MALLOC_MMAP_THRESHOLD_=131072
ENTRYPOINT ["node", "--max-semi-space-size=4", "dist/bundle/main.js"]
CMD ["run"]
