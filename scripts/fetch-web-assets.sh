#!/usr/bin/env bash
# Vendor the dashboard's charting library (uPlot, MIT) into the web service's
# static files: services/web/dashboard/static/vendor/uplot/. The files are
# third-party and gitignored; `make web-assets`, the test/up/demo targets and
# the web image's `assets` stage run this script.
#
# The version is pinned and the tarball from the npm registry is checked
# against a pinned SHA-512 (the npm `dist.integrity` of that version, in hex)
# before anything is copied, so a tampered or re-published package fails here.
# Set UPLOT_TARBALL to a local uplot-<version>.tgz to install without network.
set -o errexit -o pipefail -o nounset

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UPLOT_VERSION="1.6.32"
# npm view uplot@1.6.32 dist.integrity, decoded from base64 to hex.
UPLOT_SHA512="2883159c6ebccefbb95d751b0b82d010f9e1c0ec41b8bc96d401eda66e882935c89a46cb824332fa369b8cb8122cc6ac36e186cd09bf7a9ded3a4c93c6989023"
DEST="${WEB_ASSETS_DEST:-$ROOT/services/web/dashboard/static/vendor/uplot}"
FILES=(dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE)
STAMP="$DEST/.version"

# Already installed from the same pinned tarball: nothing to do.
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$UPLOT_VERSION $UPLOT_SHA512" ]]; then
  all_present=true
  for file in "${FILES[@]}"; do
    [[ -s "$DEST/$(basename "$file")" ]] || all_present=false
  done
  if $all_present; then
    exit 0
  fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [[ -n "${UPLOT_TARBALL:-}" ]]; then
  cp "$UPLOT_TARBALL" "$work/uplot.tgz"
else
  command -v npm >/dev/null || {
    echo "error: npm is required to fetch uPlot (or set UPLOT_TARBALL to a local tarball)" >&2
    exit 1
  }
  (cd "$work" && npm pack --silent "uplot@$UPLOT_VERSION" >/dev/null)
  mv "$work/uplot-$UPLOT_VERSION.tgz" "$work/uplot.tgz"
fi

actual="$(sha512sum "$work/uplot.tgz" | cut -d' ' -f1)"
if [[ "$actual" != "$UPLOT_SHA512" ]]; then
  echo "error: uplot-$UPLOT_VERSION.tgz has sha512 $actual, expected $UPLOT_SHA512" >&2
  exit 1
fi

tar -xzf "$work/uplot.tgz" -C "$work"
mkdir -p "$DEST"
for file in "${FILES[@]}"; do
  install -m 0644 "$work/package/$file" "$DEST/$(basename "$file")"
done
echo "$UPLOT_VERSION $UPLOT_SHA512" >"$STAMP"
echo "uPlot $UPLOT_VERSION installed in ${DEST#"$ROOT"/}"
