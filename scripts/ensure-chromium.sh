#!/usr/bin/env bash
# ensure-chromium.sh: make Debian's chromium available for the asynqmon
# browser check (deploy/browser), as with-redis.sh does for redis-server.
#
# CIOQ_CHROMIUM set, or chromium already installed: nothing to do.
# Otherwise install Debian's chromium package with apt-get (as root, or
# through sudo) and say how long it took. When it cannot be installed (no
# apt-get, no root, no package source), say so clearly and exit 0: the
# browser check then skips, naming the reason, and the rest of the run goes
# on. CIOQ_NO_CHROMIUM_INSTALL=1 skips the install.
set -uo pipefail

want=${CIOQ_CHROMIUM:-/usr/bin/chromium}
if [[ -x "$want" ]] || { [[ -z "${CIOQ_CHROMIUM:-}" ]] && command -v chromium >/dev/null 2>&1; }; then
  exit 0
fi
cannot() {
  echo "ensure-chromium: CANNOT install Debian's chromium ($1): the asynqmon UI will NOT be checked in a browser" >&2
  exit 0
}
[[ -n "${CIOQ_CHROMIUM:-}" ]] && cannot "CIOQ_CHROMIUM=$CIOQ_CHROMIUM is not an executable"
[[ "${CIOQ_NO_CHROMIUM_INSTALL:-}" == 1 ]] && cannot "CIOQ_NO_CHROMIUM_INSTALL=1"
command -v apt-get >/dev/null 2>&1 || cannot "no apt-get on this machine"
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; else cannot "not root and no password-less sudo"; fi
else
  SUDO=
fi

echo "ensure-chromium: chromium not found; installing Debian's chromium with apt-get (about 20 s)" >&2
start=$(date +%s)
log=$(mktemp "${TMPDIR:-/tmp}/cioq-chromium.XXXXXX")
trap 'rm -f "$log"' EXIT
if ! $SUDO apt-get update -qq >"$log" 2>&1; then
  tail -n 5 "$log" >&2
  cannot "apt-get update failed"
fi
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >>"$log" 2>&1; then
  tail -n 5 "$log" >&2
  cannot "apt-get install chromium failed"
fi
command -v chromium >/dev/null 2>&1 || cannot "apt-get installed no chromium binary"
echo "ensure-chromium: installed $(chromium --version 2>/dev/null | head -n 1) in $(( $(date +%s) - start )) s" >&2
