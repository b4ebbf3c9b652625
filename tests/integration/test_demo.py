"""The README's first command: `reconciler demo` runs offline and succeeds."""

from tests.helpers.configrepo import run_cli


def test_demo_runs_offline_and_shows_release_diff_and_log():
    proc = run_cli("demo", timeout=180)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout
    assert "new release shop 1.0.0: api 1.1.0, web v1.0.1" in out
    assert "new release shop 1.0.1: api 1.3.0, web v1.0.1" in out
    assert "+    newTag: 1.1.0   # set by reconciler" in out
    assert "Release: shop 1.0.1" in out
    assert "nothing to commit" in out
    assert "1.0.1: manual approval pending" in out
    # status shows 1.0.1 waiting for prod; the closing hint proposes exactly that.
    assert "shop     prod     -        1.0.1: manual approval pending" in out
    assert "next: `reconciler promote shop 1.0.1 --to prod --repo <url>`" in out
    assert "promote shop 1.0.0" not in out
    # demo --help counts the passes the demo really runs.
    passes = out.count("\n=== pass ")
    assert passes == 4
    help_text = " ".join(run_cli("demo", "--help").stdout.split())
    assert "runs four passes" in help_text
