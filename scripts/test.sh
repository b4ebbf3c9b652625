#!/usr/bin/env bash
# Install everything the test suite needs on a fresh Debian machine and run it:
# linters, type checks, the whole pytest suite, and the benchmark smoke test.
# Python packages go into a venv (default .venv; VENV=... to choose), so Debian's
# and Ubuntu's externally managed system Python is never touched. The venv sees the
# system site-packages, so packages the machine already has are not downloaded again.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v git >/dev/null || need+=(git)
python3 -c "import ensurepip, venv" 2>/dev/null || need+=(python3-venv)
command -v chromium >/dev/null || need+=(chromium)  # the dashboard's browser tests (Selenium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v gpg >/dev/null || need+=(gnupg)  # signed commits (OpenPGP keys), Helm .prov tests
command -v gpgv >/dev/null || need+=(gpgv)  # the Helm provenance gate verifies with gpgv
command -v ssh-keygen >/dev/null || need+=(openssh-client)  # signed commits (SSH keys)
if [ ${#need[@]} -gt 0 ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# sshd for the Git-over-SSH tests (its own config on a loopback port; the system
# service is not used). Installed apart: a container may refuse to start the service
# in the package's postinst, which leaves the binary usable; without it those tests skip.
if ! command -v sshd >/dev/null && [ ! -x /usr/sbin/sshd ]; then
    [ ${#need[@]} -gt 0 ] || $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        openssh-server >/dev/null 2>&1 || echo "openssh-server: install failed; SSH tests will skip"
fi
if [ -x /usr/sbin/sshd ] && [ ! -d /run/sshd ]; then
    $SUDO mkdir -p /run/sshd  # sshd's privilege separation directory
fi

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv --system-site-packages "$VENV"
fi
VENV=$(cd "$VENV" && pwd)
export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
python -m pip install -q --disable-pip-version-check -e '.[test]'
if [ -f scripts/install-helm.sh ]; then
    HELM_BIN="$(PYTHON=python bash scripts/install-helm.sh "$VENV/bin")"
    export HELM_BIN
    echo "--- helm: $("$HELM_BIN" version --short)"
fi

echo "--- ruff"
ruff check reconciler tests bench
ruff format --check reconciler tests bench
echo "--- mypy --strict"
mypy
echo "--- hadolint"
hadolint Dockerfile
echo "--- pytest"
python -m pytest -n 2 -q -p no:cacheprovider
if [ -f bench/fleet.py ]; then
    echo "--- benchmark smoke test (no timing assertions)"
    python bench/fleet.py --quick
fi
echo "--- all checks passed"
