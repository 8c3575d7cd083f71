"""A throwaway certificate authority and one server certificate for the secure stack, made with openssl.

Made by `fwv2 stack up --secure` when it starts servers that are not running, so no certificate or
key is ever committed. The server certificate names 127.0.0.1 and localhost (subjectAltName, which
is what Java's and Python's hostname checks read) and serves both TLS ends of the stack: Kafka's
and MinIO's listeners, and the broker's own mutual-TLS connection to its controller listener.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devtools.stack.process import StackError

# The server certificate's subject. Kafka maps a TLS client certificate to the principal
# User:CN=<this>, which the secure broker lists as a super user for its controller listener.
SERVER_CN = "fwv2-secure-stack"
# A few days: long enough for a stack left up over a weekend, short enough to be useless if leaked.
VALID_DAYS = 7


@dataclass(frozen=True)
class TlsFiles:
    """Where the stack's certificates are; ``ca`` is what clients trust (KAFKA_SSL_CAFILE, S3_CA_FILE)."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    @property
    def server_pem(self) -> Path:
        """Key and certificate chain in one PEM file: Kafka's ``ssl.keystore.type=PEM`` keystore."""
        return self.folder / "server.pem"

    def complete(self) -> bool:
        return all(p.is_file() for p in (self.ca, self.server_cert, self.server_key, self.server_pem))


def make_certificates(folder: Path) -> TlsFiles:
    """A new CA and a server certificate signed by it, replacing any earlier ones in ``folder``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise StackError("`openssl` not found on PATH: the secure stack makes its certificates with it")
    files = TlsFiles(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_key, csr, ext = folder / "ca.key", folder / "server.csr", folder / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        # clientAuth too: the broker presents this certificate to its own controller listener.
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    days = str(VALID_DAYS)
    _run(
        openssl,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(files.ca),
        "-days",
        days,
        "-subj",
        "/CN=fwv2 secure stack throwaway CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    _run(
        openssl,
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(files.server_key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={SERVER_CN}",
    )
    _run(
        openssl,
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(files.ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(files.server_cert),
        "-days",
        days,
        "-extfile",
        str(ext),
    )
    # PKCS#8 key first, then the chain: the layout Kafka's PEM keystore reads.
    files.server_pem.write_text(files.server_key.read_text() + files.server_cert.read_text() + files.ca.read_text())
    for private in (ca_key, files.server_key, files.server_pem):
        private.chmod(0o600)
    csr.unlink(missing_ok=True)
    return files


def _run(*argv: str) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise StackError(f"openssl {argv[1]} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
