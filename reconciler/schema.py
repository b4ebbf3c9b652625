"""The JSON Schema of every config file kind, in one place.

``reconciler schema`` prints it; ``reconciler/schema/reconciler.schema.json`` is a
generated copy for editors (a test keeps the two equal). ``config.py`` validates
each YAML document against the sub-schema of its ``kind`` so error messages stay
specific instead of jsonschema's "is not valid under any of the given schemas".
"""

from __future__ import annotations

import json
from typing import Any

from reconciler import API_VERSION

NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
"""Names become path components (releases/<project>/...): no '/', '..', NUL or newlines."""

REPOSITORY_PATTERN = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$"
"""The OCI distribution repository name grammar."""

IMAGE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,254}$"
"""host[:port]/path as written in manifests (no tag, digest, spaces or newlines)."""

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"

NOTIFICATION_EVENTS = (
    "release-created",
    "promoted",
    "waiting-for-approval",
    "drift-detected",
    "verified",
    "verification-failed",
    "auth-failed",
    "rate-limited",
    "push-rejected",
    "no-tag-matched",
    "config-invalid",
    "signature-refused",
)

_name = {"type": "string", "pattern": NAME_PATTERN, "description": "lower-case name, used in paths"}
_names = {"type": "array", "items": _name, "uniqueItems": True}
_duration = {
    "description": "a duration: seconds as a number, or text like 90s, 2m, 1h30m",
    "oneOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
}
RELPATH_PATTERN = r"^(?!/)(?!(.*/)?\.\.(/|$))(?!(.*/)?\.[gG][iI][tT](/|$))[^\x00\n\r]+$"
"""Relative, never through '..', never inside .git (any case: case-insensitive file
systems), one line."""

_relpath = {
    "type": "string",
    "minLength": 1,
    "pattern": RELPATH_PATTERN,
    "description": "a path relative to the config repository root, outside .git",
}


def _header(kind: str) -> dict[str, Any]:
    return {
        "apiVersion": {"const": API_VERSION},
        "kind": {"const": kind},
    }


def _obj(props: dict[str, Any], required: list[str], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


CREDENTIALS = _obj(
    {
        "username": {"type": "string", "description": "user name (not a secret)"},
        "usernameEnv": {"type": "string", "description": "env var holding the user name"},
        "passwordEnv": {"type": "string", "description": "env var holding the password/token"},
        "passwordFile": {"type": "string", "description": "mounted file holding the password"},
        "dockerConfig": {"type": "string", "description": "path to a docker config.json"},
        "provider": {
            "enum": ["aws", "gcp", "azure"],
            "description": "the pod's cloud identity (ECR, Artifact Registry/GCR, ACR)",
        },
        "identityFile": {
            "type": "string",
            "description": "with provider gcp: a mounted service-account key or "
            "external-account (workload identity federation) file for this feed",
        },
    },
    [],
    "where to find credentials; never the secret itself",
)

FEED = _obj(
    {
        **_header("Feed"),
        "name": _name,
        "type": {"enum": ["oci", "helm", "oci-layout"]},
        "url": {"type": "string", "minLength": 1},
        "insecure": {"type": "boolean", "description": "allow plain http / skip TLS checks"},
        "credentials": CREDENTIALS,
        "tls": _obj(
            {
                "caFile": {
                    "type": "string",
                    "description": "PEM CA bundle trusted on top of the OS store",
                },
                "clientCert": {"type": "string", "description": "PEM client certificate"},
                "clientKey": {"type": "string", "description": "PEM key of the client certificate"},
            },
            [],
            "the feed's own TLS files (mounted; granted like credentials)",
        ),
        "limits": _obj(
            {
                "concurrency": {"type": "integer", "minimum": 1, "maximum": 256},
                "requestsPerSecond": {"type": "number", "minimum": 0},
            },
            [],
        ),
        "timeout": _duration,
        "hosts": {
            "type": "array",
            "items": {"type": "string", "pattern": r"^[a-z0-9.-]+(:[0-9]+)?$"},
            "description": "registry hosts whose discovered images this feed serves "
            "(default: its URL's host)",
        },
    },
    ["apiVersion", "kind", "name", "type", "url"],
    "a container registry, Helm repository or OCI image-layout directory",
)

_phase_env = {
    "oneOf": [
        _name,
        _obj({"name": _name, "automatic": {"type": "boolean"}}, ["name"]),
    ]
}

_freeze = _obj(
    {
        "name": {"type": "string", "minLength": 1},
        "environments": _names,
        "timezone": {"type": "string"},
        "days": {
            "type": "array",
            "items": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
        },
        "start": {"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]$"},
        "end": {"type": "string", "pattern": r"^([01][0-9]|2[0-4]):[0-5][0-9]$"},
        "from": {"type": "string", "format": "date-time"},
        "to": {"type": "string", "format": "date-time"},
    },
    ["name"],
    "recurring (days/start/end in timezone) or one-off (from/to) freeze window",
)

LIFECYCLE = _obj(
    {
        **_header("Lifecycle"),
        "name": _name,
        "phases": {
            "type": "array",
            "minItems": 1,
            "items": _obj(
                {
                    "name": _name,
                    "environments": {"type": "array", "minItems": 1, "items": _phase_env},
                    "automatic": {"type": "boolean", "description": "default for environments"},
                    "minimumEnvironments": {"type": "integer", "minimum": 1},
                    "optional": {"type": "boolean"},
                    "soak": _duration,
                },
                ["name", "environments"],
            ),
        },
        "freezes": {"type": "array", "items": _freeze},
    },
    ["apiVersion", "kind", "name", "phases"],
    "ordered phases of environments",
)

RULE = _obj(
    {
        "packages": _names,
        "strategy": {"enum": ["semver", "suffix", "regex", "newest-build", "digest"]},
        "range": {"type": "string", "minLength": 1},
        "prerelease": {"type": "string"},
        "strict": {"type": "boolean"},
        "allow": {"type": "string"},
        "ignore": {"type": "array", "items": {"type": "string"}},
        "extract": {"type": "string", "pattern": r"^\$(\{[A-Za-z0-9_]+\}|[A-Za-z0-9_]+)$"},
        "order": {"enum": ["numerical", "alphabetical"]},
        "pick": {"enum": ["highest", "lowest"]},
        "samePrecision": {"type": "boolean"},
        "suffix": {"type": "string"},
        "tag": {"type": "string"},
        "platform": {"type": "string", "pattern": r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$"},
        "scanLimit": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    [],
    "how versions are chosen for some packages",
)

_helm_param = {"type": "string", "pattern": r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"}
_target = _obj(
    {
        "kind": {
            "enum": [
                "kustomize-images",
                "kustomize-helm",
                "helmrelease",
                "application",
                "markers",
                "flux-imagepolicy",
                "helm-values",
            ]
        },
        "file": _relpath,
        "images": {
            "type": "array",
            "description": "helm-values: where each image package is written, as Argo CD "
            "Image Updater's helm parameter names (default image.name / image.tag)",
            "items": _obj(
                {
                    "package": {"type": "string", "minLength": 1},
                    "name": _helm_param,
                    "tag": _helm_param,
                    "spec": _helm_param,
                    "digest": _helm_param,
                },
                ["package"],
            ),
        },
    },
    ["kind", "file"],
)
_verify_check = _obj(
    {
        "kind": {"enum": ["argocd", "flux", "commitStatus", "http"]},
        "name": {"type": "string", "minLength": 1, "description": "argocd, flux: object name"},
        "namespace": {"type": "string", "minLength": 1},
        "via": {
            "enum": ["kubernetes", "server"],
            "description": "argocd: read the Application from the Kubernetes API (default) "
            "or from the Argo CD API server named by RECONCILER_ARGOCD_SERVER",
        },
        "resource": {"enum": ["Kustomization", "HelmRelease"], "description": "flux"},
        "context": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "commitStatus: shell-style pattern of status contexts",
        },
        "url": {"type": "string", "pattern": "^https?://", "description": "http: GET this"},
        "expect": {
            "type": "string",
            "maxLength": 1024,
            "description": "http: text the body must contain; {version}, "
            "{packages.<name>.version}, {packages.<name>.digest}",
        },
    },
    ["kind"],
)
_verify = _obj(
    {
        "checks": {"type": "array", "minItems": 1, "items": _verify_check},
        "timeout": _duration,
        "interval": _duration,
        "onFailure": {"enum": ["hold", "rollback"]},
    },
    ["checks"],
    "verified deployments: a deployment counts once every check passed",
)
_ENVIRONMENT = {
    "verify": _verify,
    "overlay": _relpath,
    "promotion": {"enum": ["direct", "pull-request"]},
    "onDrift": {"enum": ["pin", "revert", "report"]},
    "targets": {"type": "array", "items": _target},
}

_key_file = {"type": "string", "minLength": 1, "description": "PEM public key (mounted)"}

KEYLESS_FIELDS = frozenset(
    {
        "keyless", "sigstore", "identity", "identities", "identityRegexp",
        "matchOIDCIdentity", "issuer", "subject", "certificateIdentity",
        "certificateIdentityRegexp", "certificateOidcIssuer", "certificateOidcIssuerRegexp",
        "certificate", "certificateChain", "rekorURL", "rekorUrl", "fulcioURL", "fulcioUrl",
        "trustedRoot", "attestors",
    }
)  # fmt: skip
"""Fields of keyless verification as cosign, Flux and Kyverno spell them: written
beside ``verify`` or ``verify.cosign``'s keys, ``validate`` points to where keyless
verification is spelled (``config/read.py``) rather than calling them unknown."""

KEYLESS_REFUSAL = (
    "keyless verification is written verify.cosign.keyless: {issuer, identity or "
    "identityRegexp, trustedRoot}; see docs/config-reference.md, 'Keyless signatures'"
)
_keyless = _obj(
    {
        "issuer": {
            "type": "string",
            "minLength": 1,
            "description": "the certificate's OIDC issuer, exactly (cosign "
            "--certificate-oidc-issuer)",
        },
        "identity": {
            "type": "string",
            "minLength": 1,
            "description": "the certificate's identity (SAN email or URI), exactly "
            "(cosign --certificate-identity)",
        },
        "identityRegexp": {
            "type": "string",
            "minLength": 1,
            "description": "an RE2 pattern found in the certificate's identity "
            "(cosign --certificate-identity-regexp)",
        },
        "trustedRoot": {
            "type": "string",
            "minLength": 1,
            "description": "sigstore trusted_root.json: Fulcio CA, CT log and Rekor keys (mounted)",
        },
    },
    ["issuer", "trustedRoot"],
    "keyless cosign signatures: a Sigstore bundle whose Fulcio certificate names this "
    "issuer and identity, checked offline against the trusted root",
)
_keyless["oneOf"] = [{"required": ["identity"]}, {"required": ["identityRegexp"]}]
_package_verify = _obj(
    {
        "cosign": {
            **_obj(
                {
                    "key": _key_file,
                    "keys": {"type": "array", "minItems": 1, "items": _key_file},
                    "keyless": _keyless,
                },
                [],
                "a version is selected only if a cosign signature over its digest "
                "verifies with one of these keys, or (keyless) was made by this identity",
            ),
            "oneOf": [{"required": ["key"]}, {"required": ["keys"]}, {"required": ["keyless"]}],
        },
        "helm": _obj(
            {
                "keyring": {
                    "type": "string",
                    "minLength": 1,
                    "description": "OpenPGP keyring (mounted)",
                }
            },
            ["keyring"],
            "a chart version is selected only if its .prov file is signed by a key of this "
            "keyring and names the archive's SHA-256 (HTTP chart repositories)",
        ),
    },
    [],
    "supply-chain gates a version must pass before it is selected",
)
_package_verify["minProperties"] = 1

PROJECT = _obj(
    {
        **_header("Project"),
        "name": _name,
        "lifecycle": _name,
        "renderDigest": {"type": "boolean", "description": "also write images[].digest"},
        "deploy": {
            **_relpath,
            "description": "deploy tree whose kustomizations name the packages (discovery)",
        },
        "packages": {
            "type": "array",
            "minItems": 1,
            "items": {
                **_obj(
                    {
                        "name": _name,
                        "feed": _name,
                        "image": {
                            "type": "string",
                            "pattern": REPOSITORY_PATTERN,
                            "description": "repository path in the feed, e.g. acme/shop-api",
                        },
                        "chart": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9._-]*$"},
                        "manifestName": {
                            "type": "string",
                            "pattern": IMAGE_NAME_PATTERN,
                            "description": "image name as written in the manifests",
                        },
                        "newName": {"type": "string", "pattern": IMAGE_NAME_PATTERN},
                        "verify": _package_verify,
                    },
                    ["name", "feed"],
                ),
                "oneOf": [{"required": ["image"]}, {"required": ["chart"]}],
            },
        },
        "channels": {
            "type": "array",
            "items": _obj(
                {
                    "name": _name,
                    "default": {"type": "boolean"},
                    "lifecycle": _name,
                    "rules": {"type": "array", "items": RULE},
                },
                ["name"],
            ),
        },
        "commitTemplate": {
            "type": "string",
            "description": "commit message for commits that change this project alone",
        },
        "releaseVersion": _obj(
            {
                "template": {"type": "string", "minLength": 1},
                "fromPackage": _name,
                "initial": {"type": "string", "minLength": 1},
            },
            [],
        ),
        "environments": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": _obj(
                {
                    **_ENVIRONMENT,
                    "tenants": {
                        "type": "object",
                        "minProperties": 1,
                        "propertyNames": {"pattern": NAME_PATTERN},
                        "additionalProperties": _obj(
                            _ENVIRONMENT,
                            ["overlay"],
                            "one tenant's overlay: environment@tenant moves through "
                            "the lifecycle like an environment",
                        ),
                        "description": "one overlay per tenant instead of one overlay",
                    },
                },
                [],
            ),
        },
    },
    ["apiVersion", "kind", "name", "lifecycle", "environments"],
    "what a project deploys, how versions are chosen, and where they are rendered",
)

TRIGGER = _obj(
    {
        **_header("Trigger"),
        "name": _name,
        "description": {"type": "string"},
        "project": _name,
        "channel": _name,
        "enabled": {"type": "boolean"},
        "sources": {"type": "array", "minItems": 1, "items": _name, "uniqueItems": True},
        "settle": _duration,
        "maxWait": _duration,
    },
    ["apiVersion", "kind", "name", "project", "sources"],
    "an external feed trigger: watch packages, release on the channel's rules",
)

SETTINGS = _obj(
    {
        **_header("Settings"),
        "branch": {"type": "string", "minLength": 1},
        "interval": _duration,
        "author": _obj(
            {"name": {"type": "string", "minLength": 1}, "email": {"type": "string"}}, []
        ),
        "commitTemplate": {"type": "string"},
        "digestRecheck": {
            **_duration,
            "description": "how long a kept tag -> digest answer is trusted (0: every pass)",
        },
        "notifications": {
            "type": "array",
            "items": _obj(
                {
                    "kind": {"enum": ["webhook", "slack", "teams"]},
                    "urlEnv": {
                        "type": "string",
                        "minLength": 1,
                        "description": "env var holding the webhook URL (URLs are secrets)",
                    },
                    "events": {"type": "array", "items": {"enum": list(NOTIFICATION_EVENTS)}},
                },
                ["kind", "urlEnv"],
            ),
        },
    },
    ["apiVersion", "kind"],
    "reconciler.yaml: defaults for the whole repository",
)

KINDS: dict[str, dict[str, Any]] = {
    "Feed": FEED,
    "Lifecycle": LIFECYCLE,
    "Project": PROJECT,
    "Trigger": TRIGGER,
    "Settings": SETTINGS,
}


def full_schema() -> dict[str, Any]:
    """One schema for editors: dispatches on ``kind``."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://reconciler.dev/schema/v1/reconciler.schema.json",
        "title": "reconciler config file",
        "type": "object",
        "required": ["apiVersion", "kind"],
        "properties": {"kind": {"enum": sorted(KINDS)}},
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {"$ref": f"#/$defs/{kind}"},
            }
            for kind in sorted(KINDS)
        ],
        "$defs": KINDS,
    }


def schema_json() -> str:
    return json.dumps(full_schema(), indent=2, sort_keys=True) + "\n"
