"""Debian's NGINX (`make nginx`) on the repository's configs/nginx.conf, as it is.

The deployment's own parts are written here, as compose.yml writes them for itself:
aioshop/upstream.conf names the web processes, aioshop/listen.conf gives the ports (plain HTTP,
and TLS with a self-signed certificate when asked) and the HTTPS origin to redirect to; NGINX's
prefix holds static/ (the app's web/static) and data/media/ (the app's media directory).
Used by the topology tests and the topology benchmark.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "configs" / "nginx.conf"
NGINX = "/usr/sbin/nginx"


def certificate(directory: Path) -> None:
    """A self-signed certificate for 127.0.0.1 (openssl), as tls/cert.pem and tls/key.pem."""
    directory.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(directory / "key.pem"),
         "-out", str(directory / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip


def upstream_conf(ports: Sequence[int]) -> str:
    """aioshop/upstream.conf: one `server` line a port on 127.0.0.1."""
    return "".join(f"server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;\n" for port in ports)


def listen_conf(http_port: int, https_port: int | None) -> str:
    """aioshop/listen.conf: plain HTTP, and TLS (which plain HTTP then redirects to) if given."""
    if https_port is None:
        return f'listen 127.0.0.1:{http_port} default_server;\nset $https_origin "";\n'
    return (
        f"listen 127.0.0.1:{http_port} default_server;\n"
        f"listen 127.0.0.1:{https_port} ssl default_server;\n"
        "ssl_certificate tls/cert.pem;\nssl_certificate_key tls/key.pem;\n"
        f"set $https_origin https://$host:{https_port};\n"
    )


@dataclass
class Nginx:
    """A running NGINX: its configuration directory, process and log."""

    conf: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def point_at(self, ports: Sequence[int]) -> None:
        """Rewrite aioshop/upstream.conf and reload (SIGHUP): new workers proxy to `ports`, the
        old ones finish their requests. The caller waits until the new upstream answers."""
        (self.conf / "aioshop" / "upstream.conf").write_text(upstream_conf(ports))
        self.process.send_signal(signal.SIGHUP)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def nginx_missing() -> str | None:
    """Why NGINX cannot run here, or None."""
    return None if os.access(NGINX, os.X_OK) else f"{NGINX} is missing: run `make nginx`"


@contextmanager
def running_nginx(
    directory: Path,
    upstream_ports: Sequence[int],
    http_port: int,
    *,
    https_port: int | None = None,
    media_dir: Path | None = None,
    access_log: bool = True,
) -> Iterator[Nginx]:
    """NGINX in the foreground on configs/nginx.conf (a link, not a copy) with the deployment's
    two files in `directory`/conf; stopped gracefully (SIGQUIT) afterwards. `access_log=False`
    sends the access log to /dev/null (`-g` cannot turn it off: the main process's stdout is)."""
    conf = directory / "conf"
    (conf / "aioshop").mkdir(parents=True)
    (conf / "nginx.conf").symlink_to(NGINX_CONF)
    if https_port is not None:
        certificate(conf / "tls")
    (conf / "aioshop" / "upstream.conf").write_text(upstream_conf(upstream_ports))
    (conf / "aioshop" / "listen.conf").write_text(listen_conf(http_port, https_port))
    prefix = directory / "prefix"
    (prefix / "data").mkdir(parents=True)
    (prefix / "static").symlink_to(ROOT / "web" / "static")
    if media_dir is not None:
        media_dir.mkdir(parents=True, exist_ok=True)
        (prefix / "data" / "media").symlink_to(media_dir)
    global_options = f"daemon off; pid {directory / 'nginx.pid'}; error_log stderr notice;"
    if os.geteuid() == 0:  # else the workers run as www-data, who cannot read `directory`
        global_options += " user root;"
    log_path = directory / "nginx.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [NGINX, "-c", str(conf / "nginx.conf"), "-p", f"{prefix}/", "-e", "stderr",
             "-g", global_options],
            stdout=log if access_log else subprocess.DEVNULL, stderr=log,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield Nginx(conf, process, log_path)
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
