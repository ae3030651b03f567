"""Real HTTPS in front of reference nodes: throwaway certificates and a TLS-terminating proxy.

The reference server speaks plain HTTP only, as Glance does behind its usual TLS terminator (haproxy, nginx,
Apache). ``TLSProxy`` plays that terminator: it accepts TLS on 127.0.0.1 with a server certificate signed by a
CA made at test time, optionally requires a client certificate from that CA (mutual TLS), and relays the
decrypted bytes both ways to one node, so the client's own TLS settings (``verify=``, ``cert=``, ``--os-cacert``,
``--insecure``, ``--os-cert``/``--os-key``) meet a real handshake.

The proxy relays bytes and does not parse HTTP, so it adds no ``X-Forwarded-Proto``: the node sees plain HTTP and
builds its ``/versions`` hrefs as ``http://`` (as Glance 33 does behind a terminator unless
``enable_proxy_headers_parsing`` or ``public_endpoint`` is set). The client reads only the version ids from that
document and never follows its hrefs, so the node URLs it was given stay ``https://`` throughout.

``https_nodes`` is the fixture (imported by the library, CLI and OSC conftests): two noauth nodes, each behind
a TLS proxy and a mutual-TLS proxy, with the certificate files.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import selectors
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from glancecache_client.server.runner import ReferenceCluster, run_cluster

__all__ = ["Certificates", "HTTPSNodes", "TLSProxy", "https_nodes", "make_certificates", "serve_https"]

# -- certificates ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """PEM files: a CA, a server and a client certificate signed by it, and an unrelated CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_combined: Path  # client certificate and key in one file (the ``cert="file"`` form)
    other_ca: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())  # EC: milliseconds, where RSA-2048 takes ~100 ms


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    certificate = (
        _builder(common_name, _name(common_name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def _make_leaf(
    common_name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    usage: x509.ObjectIdentifier,
    names: list[x509.GeneralName],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    builder = (
        _builder(common_name, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        # Python 3.13's default context verifies strictly (VERIFY_X509_STRICT): it wants the AKI.
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_certificates(directory: Path) -> Certificates:
    """Write a fresh CA, server certificate (127.0.0.1 and localhost), client certificate and unrelated CA."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _make_ca("glancecache test CA")
    server_cert, server_key = _make_leaf(
        "127.0.0.1",
        ca,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
    )
    client_cert, client_key = _make_leaf("glancecache test client", ca, ExtendedKeyUsageOID.CLIENT_AUTH, [])
    other_ca, _ = _make_ca("unrelated test CA")
    files = Certificates(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
        client_cert=directory / "client.pem",
        client_key=directory / "client-key.pem",
        client_combined=directory / "client-combined.pem",
        other_ca=directory / "other-ca.pem",
    )
    files.ca.write_bytes(_pem(ca[0]))
    files.server_cert.write_bytes(_pem(server_cert))
    files.server_key.write_bytes(_pem_key(server_key))
    files.client_cert.write_bytes(_pem(client_cert))
    files.client_key.write_bytes(_pem_key(client_key))
    files.client_combined.write_bytes(_pem(client_cert) + _pem_key(client_key))
    files.other_ca.write_bytes(_pem(other_ca))
    return files


# -- the TLS terminator ---------------------------------------------------------------------------------------


class TLSProxy:
    """Terminates TLS on 127.0.0.1:<free port> and relays the plaintext to ``upstream`` (``http://host:port``).

    One thread per connection relays both directions with ``select``: an ``SSLSocket`` must not be read and
    written from two threads at once. Keep-alive works because bytes are relayed until either side closes.
    OpenSSL works on the socket itself, so a refused handshake sends its TLS alert (e.g. "certificate required")
    before the connection closes, as a real terminator does (the client's error then says why);
    ``handshake_errors`` records the refusals.
    """

    def __init__(self, upstream: str, certificates: Certificates, *, require_client_cert: bool = False) -> None:
        host, _, port = upstream.removeprefix("http://").rpartition(":")
        self._upstream = (host, int(port))
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(certificates.server_cert, certificates.server_key)
        if require_client_cert:
            self._context.verify_mode = ssl.CERT_REQUIRED
            self._context.load_verify_locations(certificates.ca)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.handshake_errors: list[str] = []
        self.connections = 0  # accepted TCP connections: keep-alive reuse shows as fewer of them
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"tls-proxy-{self.port}", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stop accepting, end every relayed connection and wait for the threads (each notices within 0.1 s)."""
        self._stop.set()
        self._acceptor.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(raw,), name=f"tls-proxy-{self.port}-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(10)
        tls = self._context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            self.handshake_errors.append(str(exc))
            _close_gracefully(tls)
            return
        try:
            upstream = socket.create_connection(self._upstream, timeout=10)
        except OSError:
            tls.close()
            return
        with tls, upstream:
            self._relay(tls, upstream)

    def _relay(self, tls: ssl.SSLSocket, upstream: socket.socket) -> None:
        peer: dict[socket.socket, socket.socket] = {tls: upstream, upstream: tls}
        with selectors.DefaultSelector() as selector:
            selector.register(tls, selectors.EVENT_READ)
            selector.register(upstream, selectors.EVENT_READ)
            while not self._stop.is_set():
                # Decrypted bytes already inside the SSL object do not make the socket readable.
                ready = [tls] if tls.pending() else [key.fileobj for key, _ in selector.select(timeout=0.1)]
                for source in ready:
                    assert isinstance(source, socket.socket)
                    try:
                        data = source.recv(65536)
                        if data:
                            peer[source].sendall(data)
                            continue
                    except OSError:
                        return  # a reset or TLS error on either side ends the connection
                    if source is upstream:
                        return  # the node closed (idle keep-alive or Connection: close): so do we
                    # The client finished sending: pass the half-close on, and relay the rest of the answer.
                    selector.unregister(tls)
                    with contextlib.suppress(OSError):
                        upstream.shutdown(socket.SHUT_WR)


def _close_gracefully(tls: ssl.SSLSocket) -> None:
    """Close after a failed handshake without a TCP reset, so the peer reads the TLS alert OpenSSL sent.

    Closing with unread bytes (the client's first request, sent right after its TLS 1.3 Finished) would send
    a RST, which can reach the client before it reads the alert and turn "certificate required" into
    "connection reset".
    """
    with contextlib.suppress(OSError):
        tls.shutdown(socket.SHUT_WR)  # also drops the SSL object: recv() below reads raw bytes
        tls.settimeout(2)
        while tls.recv(65536):
            pass
    tls.close()


# -- the fixture ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HTTPSNodes:
    """Reference nodes behind TLS: ``urls`` (TLS) and ``mtls_urls`` (client certificate required), per node."""

    cluster: ReferenceCluster
    urls: list[str]
    mtls_urls: list[str]
    certs: Certificates
    proxies: list[TLSProxy]

    def proxy(self, url: str) -> TLSProxy:
        return next(proxy for proxy in self.proxies if proxy.url == url)


@contextlib.contextmanager
def serve_https(directory: Path, nodes: int = 2) -> Iterator[HTTPSNodes]:
    """``nodes`` noauth reference nodes, each behind a TLS proxy and a mutual-TLS proxy."""
    certs = make_certificates(directory / "pki")
    with run_cluster(nodes=nodes, auth="noauth", data_dir=directory / "data") as cluster:
        proxies: list[TLSProxy] = []
        try:
            tls = [TLSProxy(url, certs) for url in cluster.urls]
            proxies += tls
            mtls = [TLSProxy(url, certs, require_client_cert=True) for url in cluster.urls]
            proxies += mtls
            yield HTTPSNodes(cluster, [p.url for p in tls], [p.url for p in mtls], certs, proxies)
        finally:
            for proxy in proxies:  # before the nodes stop, so no relay sees its node vanish
                proxy.close()


@pytest.fixture(scope="module")
def https_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HTTPSNodes]:
    with serve_https(tmp_path_factory.mktemp("https")) as running:
        yield running
