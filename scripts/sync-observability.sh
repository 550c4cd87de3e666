#!/usr/bin/env bash
# Copy the observability sources the chart ships into the chart (Helm cannot read files
# outside it): observability/{grafana/dashboards,prometheus/rules,otel-collector} ->
# charts/inference-platform/files/observability/.
#   scripts/sync-observability.sh           write the copies
#   scripts/sync-observability.sh --check   fail (exit 1) when a copy differs or is missing
set -o errexit -o pipefail -o nounset

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOURCE="$ROOT/observability"
TARGET="$ROOT/charts/inference-platform/files/observability"
# Only what the chart renders; promtool tests and the README stay in observability/.
PARTS=(grafana/dashboards prometheus/rules otel-collector)

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac

if $check; then
  status=0
  for part in "${PARTS[@]}"; do
    if ! diff -r "$SOURCE/$part" "$TARGET/$part"; then
      status=1
    fi
  done
  # A directory the chart still carries but observability/ no longer has is drift too.
  for dir in "$TARGET"/*/ "$TARGET"/*/*/; do
    [[ -d $dir ]] || continue
    rel="${dir#"$TARGET"/}"
    rel="${rel%/}"
    if [[ ! -d $SOURCE/$rel ]]; then
      echo "only in the chart: $TARGET/$rel"
      status=1
    fi
  done
  if ((status != 0)); then
    echo "error: the chart's copies of observability/ drifted; run scripts/sync-observability.sh" >&2
  fi
  exit "$status"
fi

rm -rf "$TARGET"
for part in "${PARTS[@]}"; do
  mkdir -p "$TARGET/$part"
  cp -R "$SOURCE/$part/." "$TARGET/$part/"
done
echo "synced ${PARTS[*]} into ${TARGET#"$ROOT"/}"
