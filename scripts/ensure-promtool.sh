#!/usr/bin/env bash
# Make sure promtool (Prometheus' rule checker) is installed; print its path.
# PROMTOOL overrides the command. When it is missing and we are root, install Debian's
# `prometheus` package (it ships /usr/bin/promtool); otherwise fail with what to do.
set -o errexit -o pipefail -o nounset

PROMTOOL="${PROMTOOL:-promtool}"

if command -v "$PROMTOOL" >/dev/null; then
  command -v "$PROMTOOL"
  exit 0
fi
if [[ $PROMTOOL != promtool ]]; then
  echo "error: PROMTOOL=$PROMTOOL is not an executable" >&2
  exit 1
fi
# Root, or passwordless sudo (GitHub's runners): install with apt-get.
as_root=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
fi
if { [[ $(id -u) -eq 0 ]] || ((${#as_root[@]})); } && command -v apt-get >/dev/null; then
  echo "promtool is missing; installing the distribution's prometheus package" >&2
  # --no-install-recommends: promtool and the server binary only, no exporters or web assets.
  install=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus)
  "${install[@]}" >&2 || { "${as_root[@]}" apt-get update >&2 && "${install[@]}" >&2; }
  command -v promtool
  exit 0
fi
echo "error: promtool is missing. Install it (Debian/Ubuntu: sudo apt-get install prometheus)," >&2
echo "or download a release from https://prometheus.io/download/ and set PROMTOOL=/path/to/promtool" >&2
exit 1
