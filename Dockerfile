# syntax=docker/dockerfile:1
# media-orchestrator: one image for every role (`start --role api|orchestrator|worker|all`; compose.yaml runs them
# apart). ffmpeg and ffprobe come from their npm packages, so the image needs no ffmpeg from apt.
#
# Three stages on the same base image (same glibc, same Node ABI, so native modules built in one run in another):
#   build    compiles src/ to dist/ (the full tree, dev dependencies included; only tsc runs here),
#   deps     installs the production dependencies and builds their native parts,
#   runtime  what runs: dist/, bin/, the dashboard's static files and the production node_modules, as user node.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the root package's `prepare` would run `npm run build` before src/ is here, and tsc needs none of
# the dependencies' native parts.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim AS deps
# A compiler for better-sqlite3 when prebuild-install cannot download its prebuilt binary (no release for this
# platform, or no access to GitHub); it stays in this stage, the runtime image never gets it.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# The production tree exactly as the lockfile has it. `npm ci --omit=dev` alone would run the root package's
# `prepare` (`npm run build`), which fails here: tsc is a dev dependency. So --ignore-scripts, then `npm rebuild`
# runs the install scripts the project allows (package.json "allowScripts", read from there so that the list has one
# home): better-sqlite3's prebuild-install (or node-gyp build), the ffmpeg/ffprobe installers' chmod, esbuild's check.
# A package absent on this platform is skipped. sharp has no install script: its binary and libvips come as the
# prebuilt @img/sharp-* packages npm picks for the platform. The node -e line fails the build, not the first job, when
# a native module does not load.
# Why not `npm prune --omit=dev` in the build stage and copy that: the build stage would need the native parts built
# (and the compiler), and the prune would come after `COPY src`, so every source change would re-run it and ship a new
# node_modules layer of hundreds of MB. This stage depends on the lockfile only: a new version of the code moves dist/.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm rebuild $(node -p "Object.entries(require('./package.json').allowScripts).filter(([, on]) => on).map(([name]) => name).join(' ')") \
  && node -e "require('better-sqlite3')(':memory:').close(); require('sharp')"
# The installers' chmod is `u+x`: for root, who owns node_modules. The runtime user is not root, and ffprobe ends up
# mode 744, which it could not run.
RUN find node_modules/@ffmpeg-installer node_modules/@ffprobe-installer -type f \( -name ffmpeg -o -name ffprobe \) \
  -exec chmod a+rx {} +

FROM node:20-bookworm-slim AS runtime
# Offline speech-to-text (AI_PROVIDERS speech=local): pocketsphinx_continuous and its English model, about 40 MB.
RUN apt-get update \
  && apt-get install -y --no-install-recommends pocketsphinx pocketsphinx-en-us \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production DATA_DIR=/data
# package.json says "type": "module": without it Node would read dist/*.js as CommonJS.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
# The dashboard's static files are read at run time from <root>/src/server/public (src/server/routes/ui.ts).
COPY src/server/public ./src/server/public
# A new named volume is initialised from the image's /data, ownership included: user node can write to it. The
# application's files stay root's, read-only to the process that runs them.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 3000
# No HEALTHCHECK: only the api role serves HTTP; compose.yaml checks the api (/readyz).
ENTRYPOINT ["./bin/media-orchestrator"]
CMD ["start"]
