"""`once` and `plan` import the sidecar's and the validator's libraries only when they
need them (issue 22 item 4): prometheus_client and watchdog belong to `run`, jsonschema
to a config that is not in the validated cache."""

from __future__ import annotations

import subprocess
import sys

DEFERRED = ("prometheus_client", "jsonschema", "watchdog", "jinja2")
# PyJWT (and the x509 half of cryptography it loads) signs only GCP service-account keys
# and GitHub App tokens: a pass without either never imports it.
SIGNING_ONLY = "jwt"
# cryptography's primitives check cosign signatures: a pass without a cosign-gated
# package never imports them.
COSIGN_ONLY = "cryptography"
# sigstore-python (the optional keyless extra) verifies keyless cosign signatures only.
KEYLESS_ONLY = "sigstore"


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('MODULES', ' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    [line] = [line for line in out.splitlines() if line.startswith("MODULES ")]
    return set(line.split()[1:])


def test_the_pass_machinery_does_not_import_sidecar_or_validator_libraries():
    loaded = _loaded_after(
        "import reconciler.reconcile, reconciler.commands.once, reconciler.commands.plan"
    )
    assert "reconciler.reconcile" in loaded
    assert not [
        name for name in (*DEFERRED, SIGNING_ONLY, COSIGN_ONLY, KEYLESS_ONLY) if name in loaded
    ]


def test_the_cli_help_imports_no_heavy_library():
    loaded = _loaded_after(
        "from reconciler.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert not [n for n in (*DEFERRED, "git", "ruamel.yaml", "httpx") if n in loaded]


def test_the_sidecar_server_loads_jinja2_only_for_the_first_page():
    loaded = _loaded_after("import reconciler.server, reconciler.dashboard")
    assert "reconciler.dashboard" in loaded and "jinja2" not in loaded
