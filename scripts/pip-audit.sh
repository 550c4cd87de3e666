#!/usr/bin/env bash
# pip-audit the pinned requirement files against PyPI's vulnerability data.
#   scripts/pip-audit.sh PIP_AUDIT FILE... (extra pip-audit flags in AUDIT_FLAGS)
# The files are fully pinned: --no-deps --disable-pip audits them as written.
# --strict fails when a package cannot be looked up, so a partial audit never passes.
# Where PyPI's per-release JSON API cannot be reached (offline machines, mirrors
# that only serve the index), the audit cannot run: with AUDIT_REQUIRED=1 (set in
# GitHub Actions) that is an error; otherwise it says so loudly and skips.
set -o errexit -o pipefail -o nounset

PIP_AUDIT=$1
shift
probe="https://pypi.org/pypi/pip/24.0/json"
if ! curl -fsS -o /dev/null --max-time 15 "$probe" 2>/dev/null; then
  if [[ "${AUDIT_REQUIRED:-0}" == "1" ]]; then
    echo "error: PyPI's vulnerability data ($probe) cannot be reached; pip-audit cannot run" >&2
    exit 1
  fi
  echo "WARNING: PyPI's vulnerability data ($probe) cannot be reached from this machine:" >&2
  echo "WARNING: pip-audit was NOT run. It runs in GitHub Actions (AUDIT_REQUIRED=1)." >&2
  exit 0
fi
for file in "$@"; do
  echo "pip-audit $file"
  # shellcheck disable=SC2086  # AUDIT_FLAGS holds several flags
  "$PIP_AUDIT" --requirement "$file" --no-deps --disable-pip --strict --progress-spinner off ${AUDIT_FLAGS:-}
done
