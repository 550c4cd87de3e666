#!/usr/bin/env bash
# Make sure Debian's chromium is installed for the browser tests (tests/browser).
# Playwright drives it through CHROMIUM (default /usr/bin/chromium); no browser
# is downloaded by Playwright itself. Installs the Debian package when missing
# and this runs as root with apt-get; otherwise fails with what to do.
set -o errexit -o pipefail -o nounset

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [[ -x "$CHROMIUM" ]]; then
  exit 0
fi
if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends chromium >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
if [[ ! -x "$CHROMIUM" ]]; then
  echo "error: no chromium at $CHROMIUM; install Debian's package (apt-get install chromium)" \
    "or set CHROMIUM to a Chromium binary" >&2
  exit 1
fi
