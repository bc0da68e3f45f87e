# syntax=docker/dockerfile:1
# Tollgate's sidecar image: `tollgate serve` and nothing else. Envoy runs from its own image
# (envoyproxy/envoy, k8s/base/deployment.yaml). Not built on the development machines (they
# have no container engine); test/e2e/manifests.test.ts checks that everything copied here
# exists and matches what CI tests, including this Node version (`npm run test:node24` runs
# the unit and integration suites on the same release, scripts/install-tools.sh).
ARG NODE_VERSION=24.21.0

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
# `prepare` (build + the Envoy wheel for the local stack) is not wanted here: install without
# lifecycle scripts and build explicitly. The variable also stops scripts/install-envoy.mjs
# should anything run it.
ENV TOLLGATE_SKIP_ENVOY_INSTALL=1
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src/ src/
RUN npm run build

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
# A young generation of 2 x 4 MiB instead of V8's default growth to 2 x 16 MiB: about 25 MiB
# less resident memory under load, shorter scavenge pauses (docs/benchmarks.md). A NODE_OPTIONS
# set at run time replaces this one: keep the flag there (k8s/base/deployment.yaml does).
ENV NODE_ENV=production TOLLGATE_SKIP_ENVOY_INSTALL=1 NODE_OPTIONS=--max-semi-space-size=4
WORKDIR /app
# Production dependencies only. No dependency needs an install script to work (the test
# checks the lockfile), and `prepare` would try to compile with the absent TypeScript.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src/ dist/src/
# proto/: the gRPC definitions loaded at start; envoy/: marks the install root for
# projectRoot() and holds the bootstraps (`tollgate stack` is not used in the image).
COPY proto/ proto/
COPY envoy/ envoy/
# The `node` user of the base image, by number so `runAsNonRoot` can verify it.
USER 1000:1000
EXPOSE 9001 9464
# --single-threaded-gc: V8 collects on the thread that answers Checks, not on helper threads
# that compete with it for the pod's CPU (NODE_OPTIONS does not accept this flag; see
# docs/benchmarks.md, "Garbage collection on one thread", for what it changes).
ENTRYPOINT ["node", "--single-threaded-gc", "dist/src/main.js"]
CMD ["serve", "--config", "/etc/tollgate/tollgate.yaml"]
