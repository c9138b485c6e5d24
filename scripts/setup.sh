#!/usr/bin/env bash
# One idempotent set-up for a fresh machine: system packages (nats-server, openssl, iproute2),
# npm dependencies, and the TypeScript build. `npm run demo`, `npm test` and
# `npm run bench` run it first; running it again does only what is missing.
# Progress goes to stderr so that stdout stays for the command's own output.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'setup: %s\n' "$*" >&2; }

# --- system packages -------------------------------------------------------
missing=()
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
# openssl: `doppel certs` (the fleet PKI) and the TLS tests; iproute2: the multi-host tests in network namespaces.
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} from Debian"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# --- node ------------------------------------------------------------------
node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<15)) { console.error("setup: Node.js >= 20.15 is required (zlib.crc32), found "+process.versions.node); process.exit(1); }'

# --- npm dependencies (lz4 builds a native addon with node-gyp) -------------
stamp=node_modules/.doppel-installed
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error >&2
  node -e 'require("lz4")' 2>/dev/null || { say "lz4 native addon missing after install; rebuilding"; npm rebuild lz4 >&2; }
  touch "$stamp"
fi

# --- build -----------------------------------------------------------------
if [ ! -f dist/.built ] || [ -n "$(find proto shared agent coordinator repository array cli bench test tsconfig.json -newer dist/.built -type f -print -quit 2>/dev/null)" ]; then
  say "building TypeScript"
  npx --no-install tsc -p . >&2
  touch dist/.built
fi
