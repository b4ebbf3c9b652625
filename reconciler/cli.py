"""Command-line entry point: parses arguments and dispatches to reconciler.commands.*.

Each command lives in its own module and returns an exit code (documented in
errors.py and the README). Commands are imported lazily so that ``--help`` and
``validate`` start fast.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any

import click

from reconciler import __version__
from reconciler.errors import EXIT_CODES_HELP

DISTRIBUTION = "gitops-release-reconciler"
"""The name on the package index (``reconciler`` there is an unrelated project)."""

# command name -> (module under reconciler.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "Check a config repository: schema and cross-references."),
    "schema": ("schema", "Print the JSON Schema of the config files."),
    "plan": ("plan", "Dry run: poll feeds and print what a pass would do."),
    "once": ("once", "Run one pass: release, render, commit and push."),
    "run": ("run", "Run passes forever (sidecar mode), with webhooks and metrics."),
    "demo": ("demo", "Run the bundled sample end to end, offline."),
    "status": ("status", "Show environments x releases and what is waiting."),
    "history": ("history", "Show the audit trail read from git log."),
    "dashboard": ("dashboard", "Serve the release matrix in a browser (dry-run passes)."),
    "promote": ("promote", "Promote a release to an environment (manual approval)."),
    "rollback": ("rollback", "Redeploy an earlier release to an environment."),
    "block": ("block", "Block a release from further promotion."),
    "unblock": ("unblock", "Unblock a release."),
    "explain": ("explain", "Explain why versions were accepted or rejected."),
    "pin": ("pin", "Pin an environment: the reconciler never changes it."),
    "unpin": ("unpin", "Remove an environment's pin."),
    "init": ("init", "Scaffold a config repository from an existing GitOps repository."),
    "import": ("importer", "Write config from Flux, Argo CD Image Updater or Octopus."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        try:
            module = importlib.import_module(f"reconciler.commands.{entry[0]}")
        except ModuleNotFoundError:
            return None
        command: click.Command = module.command
        command.help = plain_help(command.help)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        # Errors become messages and exit codes, never tracebacks (set RECONCILER_DEBUG=1
        # to see one). Click's own exits and usage errors pass through unchanged.
        from reconciler.errors import ExitCode, ReconcilerError, exit_for

        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except ReconcilerError as exc:
            code, message = exit_for(exc)
            click.echo(message, err=True)
            raise SystemExit(code) from None
        except Exception as exc:
            if os.environ.get("RECONCILER_DEBUG"):
                raise
            click.echo(
                f"reconciler: internal error: {type(exc).__name__}: {exc} "
                "(set RECONCILER_DEBUG=1 for the traceback)",
                err=True,
            )
            raise SystemExit(ExitCode.INTERNAL) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text from the table: listing commands must not import them all.
        rows = [(name, help_text) for name, (_, help_text) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


# Operator grants for feed credentials (reconciler.grants): flag -> environment variable.
# The feed clients read the environment at call time, so a flag sets its variable.
GRANT_FLAGS = {
    "credentials_dir": "RECONCILER_CREDENTIALS_DIR",
    "feed_env_prefix": "RECONCILER_FEED_ENV_PREFIX",
    "allow_http_credentials": "RECONCILER_ALLOW_HTTP_CREDENTIALS",
    "token_realm": "RECONCILER_TOKEN_REALMS",
    "oci_layout_dir": "RECONCILER_OCI_LAYOUT_DIRS",
}


def plain_help(text: str | None) -> str | None:
    """A docstring as terminal text: ``code`` and :role:`name` lose their RST markup."""
    if text is None:
        return None
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "`")


ENVIRONMENT_HELP = """\b
Environment variables (an option's own variable is shown in its command's help):
  RECONCILER_REPO, RECONCILER_WORKDIR, RECONCILER_BRANCH   where the config repo is
  RECONCILER_GIT_USERNAME[_FILE], RECONCILER_GIT_PASSWORD[_FILE], RECONCILER_GIT_TOKEN
  RECONCILER_GIT_SSH_KEY_FILE, RECONCILER_GIT_KNOWN_HOSTS  Git credentials
  DOCKER_CONFIG                          directory of the registry config.json
  RECONCILER_WEBHOOK_SECRET[_FILE]       webhook HMAC secret (run)
  RECONCILER_LISTEN, RECONCILER_INTERVAL, RECONCILER_SHARD   sidecar settings (run)
  RECONCILER_SHARD_COUNT, POD_NAME       --shard auto in a StatefulSet
  RECONCILER_LOG_LEVEL, RECONCILER_LOG_FORMAT   logging (run, once)
  NO_COLOR                               no colour in output
  RECONCILER_DEBUG                       tracebacks for internal errors
The full list is in docs/cli.md."""


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="reconciler: GitOps external feed triggers, channels and lifecycles, all in "
    f"Git.\n\n{EXIT_CODES_HELP}\n\n{ENVIRONMENT_HELP}",
)
@click.version_option(version=__version__, package_name=DISTRIBUTION)
@click.option(
    "--credentials-dir",
    multiple=True,
    metavar="[HOST=]DIR",
    help="A directory whose files feeds may name as credentials (repeatable; default "
    "/var/run/secrets/reconciler; env RECONCILER_CREDENTIALS_DIR, comma-separated).",
)
@click.option(
    "--feed-env-prefix",
    multiple=True,
    metavar="[HOST=]PREFIX",
    help="Environment variables feeds may name start with this (repeatable; default "
    "RECONCILER_FEED_; env RECONCILER_FEED_ENV_PREFIX).",
)
@click.option(
    "--allow-http-credentials",
    multiple=True,
    metavar="HOST[:PORT]",
    help="A feed host that may receive credentials over plain http or unverified TLS "
    "(repeatable; env RECONCILER_ALLOW_HTTP_CREDENTIALS).",
)
@click.option(
    "--token-realm",
    multiple=True,
    metavar="REGISTRY=REALM",
    help="A registry host whose credentials may go to a token realm on another host "
    "(repeatable; env RECONCILER_TOKEN_REALMS).",
)
@click.option(
    "--oci-layout-dir",
    multiple=True,
    metavar="DIR",
    help="A directory outside the config repository whose OCI image layouts oci-layout "
    "feeds may read (repeatable; env RECONCILER_OCI_LAYOUT_DIRS, comma-separated).",
)
@click.pass_context
def main(ctx: click.Context, /, **grants: tuple[str, ...]) -> None:
    if os.environ.get("NO_COLOR"):  # https://no-color.org: any non-empty value
        ctx.color = False
    for option, variable in GRANT_FLAGS.items():
        if grants.get(option):
            os.environ[variable] = ",".join(grants[option])


def run(argv: list[str] | None = None) -> Any:
    return main.main(args=argv, prog_name="reconciler", standalone_mode=True)


if __name__ == "__main__":
    sys.exit(run())
