"""Real key managers for the provider tests, started and stopped by the tests themselves.

- SoftHSM2: a token initialised in a temp directory (``SOFTHSM2_CONF`` points there);
- PyKMIP's server: a subprocess on a free loopback port, mutual TLS with a CA, server and client
  certificates generated for this run (plus a second, foreign CA for the negative tests);
- moto's server: a subprocess on a free loopback port speaking the KMS API.

Every launcher raises (the test fails) when its server does not come up; none skips. Every
subprocess is terminated, then killed, at the end of the session.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SOFTHSM_LIBRARIES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
START_TIMEOUT = 30.0


class ServerFailedError(RuntimeError):
    """A key manager the tests need did not start."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailedError(f"server exited with {process.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise ServerFailedError(f"server did not listen on {port} in {START_TIMEOUT:g}s:\n{_tail(log)}")


def _tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-30:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _spawn(args: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    try:
        return subprocess.Popen(
            args,
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped with everything it spawned
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    finally:
        handle.close()


# -- SoftHSM2 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoftHsm:
    library: str
    token_label: str
    pin: str
    so_pin: str
    conf: Path


def softhsm_library() -> str:
    for path in SOFTHSM_LIBRARIES:
        if os.path.exists(path):
            return path
    raise ServerFailedError(
        "SoftHSM2 is not installed (scripts/ensure-system-deps installs softhsm2)"
    )


@contextlib.contextmanager
def softhsm(directory: Path) -> Iterator[SoftHsm]:
    """A fresh SoftHSM2 token under ``directory``; sets SOFTHSM2_CONF for this process."""
    library = softhsm_library()
    util = shutil.which("softhsm2-util")
    if util is None:
        raise ServerFailedError("softhsm2-util is not on PATH")
    tokens = directory / "tokens"
    tokens.mkdir(mode=0o700)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    hsm = SoftHsm(library, "ownkey-test", os.urandom(8).hex(), os.urandom(8).hex(), conf)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    done = subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            hsm.token_label,
            "--so-pin",
            hsm.so_pin,
            "--pin",
            hsm.pin,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ServerFailedError(f"softhsm2-util --init-token failed: {done.stderr.strip()}")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        yield hsm
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


# -- certificates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def make_pki(directory: Path, prefix: str = "") -> Pki:
    """A CA, and a server and a client certificate it signed, valid for 127.0.0.1/localhost."""
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(f"ownkey test CA {prefix}"))
        .issuer_name(_name(f"ownkey test CA {prefix}"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / f"{prefix}ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths: dict[str, tuple[Path, Path]] = {}
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"ownkey test {who}"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_path, key_path = directory / f"{prefix}{who}.pem", directory / f"{prefix}{who}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        paths[who] = (cert_path, key_path)
    return Pki(ca_path, *paths["server"], *paths["client"])


# -- PyKMIP server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KmipServer:
    host: str
    port: int
    pki: Pki
    foreign: Pki  # certificates from a CA the server does not trust
    log: Path


_KMIP_MAIN = textwrap.dedent(
    """
    import sys
    from kmip.services.server import server
    s = server.KmipServer(config_path=sys.argv[1], log_path=sys.argv[2], policy_path=sys.argv[3])
    with s:
        s.serve()
    """
)


@contextlib.contextmanager
def kmip_server(directory: Path) -> Iterator[KmipServer]:
    pki = make_pki(directory)
    foreign = make_pki(directory, prefix="foreign-")
    policies = directory / "policies"
    policies.mkdir()
    port = free_port()
    config = directory / "server.conf"
    config.write_text(
        textwrap.dedent(
            f"""
            [server]
            hostname=127.0.0.1
            port={port}
            certificate_path={pki.server_cert}
            key_path={pki.server_key}
            ca_path={pki.ca}
            auth_suite=TLS1.2
            enable_tls_client_auth=True
            database_path={directory / "kmip.db"}
            """
        )
    )
    log = directory / "server.log"
    process = _spawn(
        [sys.executable, "-c", _KMIP_MAIN, str(config), str(directory / "kmip.log"), str(policies)],
        log,
        directory,
    )
    try:
        _wait_for_port(port, process, log)
        yield KmipServer("127.0.0.1", port, pki, foreign, log)
    finally:
        # PyKMIP's stop() joins every thread for 10 s each, its policy monitor too; its data is
        # a throw-away SQLite file, so a short grace before SIGKILL is enough.
        _stop(process, grace=1.0)


# -- moto ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotoServer:
    endpoint: str
    port: int


@contextlib.contextmanager
def moto_server(directory: Path) -> Iterator[MotoServer]:
    port = free_port()
    log = directory / "moto.log"
    process = _spawn(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], log, directory
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_for_port(port, process, log)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(endpoint + "/moto-api/", timeout=1):
                    break
            except urllib.error.HTTPError:
                break  # it answered
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise ServerFailedError(f"moto did not answer: {exc}\n{_tail(log)}") from exc
                time.sleep(0.1)
        yield MotoServer(endpoint, port)
    finally:
        _stop(process)
