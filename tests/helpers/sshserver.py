"""A real OpenSSH server on loopback for Git-over-SSH tests.

``ssh_server`` (session scoped) runs ``sshd`` (Debian package ``openssh-server``) on
a free 127.0.0.1 port with its own host key, accepting one client key for the user
running the tests. Bare repositories on this machine are then reachable as
``ssh://<user>@127.0.0.1:<port>/<path>``; ``known_hosts`` holds the host key.
Tests using it are skipped with a reason when ``sshd`` is not installed.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowTcpForwarding no
X11Forwarding no
LogLevel ERROR
"""


@dataclass
class SshServer:
    port: int
    user: str
    client_key: Path  # private key sshd accepts
    other_key: Path  # a key sshd does not accept
    known_hosts: Path  # the server's real host key
    wrong_known_hosts: Path  # another key for the same host: must be refused
    process: subprocess.Popen[bytes]

    def url(self, bare_repo: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{bare_repo}"


def _keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
    )
    return path.with_suffix(".pub").read_text().strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_banner(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                if conn.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("sshd did not start within 10 s")


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if sshd is None:
        pytest.skip("sshd not installed (Debian package openssh-server)")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
    workdir = tmp_path_factory.mktemp("sshd")
    host_public = _keygen(workdir / "host_key")
    wrong_host_public = _keygen(workdir / "wrong_host_key")
    client_public = _keygen(workdir / "client_key")
    _keygen(workdir / "other_key")
    (workdir / "authorized_keys").write_text(client_public + "\n")
    port = _free_port()
    (workdir / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_public}\n")
    (workdir / "wrong_known_hosts").write_text(f"[127.0.0.1]:{port} {wrong_host_public}\n")
    config = workdir / "sshd_config"
    config.write_text(SSHD_CONFIG.format(port=port, dir=workdir))
    process = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_banner(port, process)
        yield SshServer(
            port=port,
            user=getpass.getuser(),
            client_key=workdir / "client_key",
            other_key=workdir / "other_key",
            known_hosts=workdir / "known_hosts",
            wrong_known_hosts=workdir / "wrong_known_hosts",
            process=process,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
