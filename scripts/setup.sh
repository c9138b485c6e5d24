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

# --- QEMU (the qemu driver, its tests, the qemu-clone-backup demo and bench) -----------------------------
# QEMU >= 8.2 (we test 10.0 from bookworm-backports); qemu-utils for qemu-img; busybox-static, cpio and gcc
# build the test guest (scripts/build-test-guest.sh, which downloads a Debian kernel package at first use).
qemu_ok() {
  command -v qemu-system-x86_64 >/dev/null 2>&1 && command -v qemu-img >/dev/null 2>&1 || return 1
  qemu-system-x86_64 --version | head -1 | awk '{ split($4, v, "."); exit !(v[1] > 8 || (v[1] == 8 && v[2] >= 2)) }'
}
qmissing=()
qemu_ok || qmissing+=(qemu-system-x86 qemu-utils)
command -v cpio >/dev/null 2>&1 || qmissing+=(cpio)
command -v gcc >/dev/null 2>&1 || qmissing+=(gcc libc6-dev)
[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" = "install ok installed" ] || qmissing+=(busybox-static)
if [ ${#qmissing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  codename="$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")"
  target=()
  if ! qemu_ok && [ "$codename" = bookworm ]; then
    # bookworm's own QEMU is 7.2; the driver is tested with 10.0 from bookworm-backports.
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      say "adding the bookworm-backports suite for QEMU"
      printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        | $SUDO tee /etc/apt/sources.list.d/doppel-backports.sources >/dev/null
    fi
    target=(-t bookworm-backports)
  fi
  say "installing ${qmissing[*]} from Debian"
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${target[@]}" "${qmissing[@]}" >&2
  qemu_ok || { say "QEMU >= 8.2 is required for the qemu driver, found: $(qemu-system-x86_64 --version 2>&1 | head -1)"; exit 1; }
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
