# syntax=docker/dockerfile:1
# rxgate's container image. Build: docker build -t rxgate .
# Run:   docker run --rm -p 8080:8080 -p 9901:9901 -e UPSTREAM_URL=http://host.docker.internal:3000 rxgate
# The config is /etc/rxgate/rxgate.yaml (deploy/rxgate.yaml); mount a directory
# over /etc/rxgate to use your own (a directory, not a single file, so a
# Kubernetes ConfigMap update reaches the process: see docs/fleet.md).
#
# Debian slim, not Alpine: the uWebSockets.js build for Node 20 ships glibc
# binaries only (musl cannot load them).
ARG NODE_VERSION=20

# ---- build: dev dependencies, TypeScript → dist/, then drop the dev dependencies
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before lib/ is here (the build is the
# next step), and no dependency needs its install script (ws's optional
# bufferutil ships prebuilt binaries; esbuild is a dev tool).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY lib ./lib
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -f dist/.tsbuildinfo

# ---- runtime: node_modules (production only), dist/, bin/ and package.json
FROM node:${NODE_VERSION}-bookworm-slim
# No RXGATE_LOG_LEVEL here: set, it overrides the config's log.level (at start
# and on reload), so the image would ignore a mounted config's level. Unset, the
# level is the config's, else info; `docker run -e RXGATE_LOG_LEVEL=debug` still wins.
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and not writable by the process: rxgate writes nothing to disk.
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/package.json ./package.json
COPY bin ./bin
COPY examples/demo.yaml ./examples/demo.yaml
# The admin page's HTML (lib/admin/page.ts reads it from lib/, as the npm package ships it).
COPY lib/admin/page.html ./lib/admin/page.html
COPY deploy/rxgate.yaml /etc/rxgate/rxgate.yaml
# The image's own `node` user (uid 1000): never root.
USER node
# 8080: the gateway (listen.port); 9901: the admin listener (/ready, /health, /metrics, /reload).
EXPOSE 8080 9901
# rxgate drains on SIGTERM (stops taking new requests, finishes those in
# flight within drain.timeout) and exits 0. `docker stop -t 30` leaves room
# for the default 25s drain.
STOPSIGNAL SIGTERM
# Slim images have no curl: Node's own fetch asks the admin listener's /ready.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9901/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/rxgate.mjs"]
CMD ["--config", "/etc/rxgate/rxgate.yaml"]
