"""The site's certificate authority and each node's certificate: made by the seed generator, checked
wherever a document or a secrets file is read.

One CA per site signs one certificate per node; the certificate names the node (its name and every
address it has, and on a controller the VIP and its host name too), so the same pair serves the node's
MariaDB, RabbitMQ, its APIs behind HAProxy and HAProxy on the VIP. ECDSA P-256 keeps handshakes cheap on
slow cores. The CA's key stays in the secrets file of the seed generator; a node gets the CA certificate,
its own certificate and its own key, nothing else.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
NODE_DAYS = 397  # what browsers accept for a server certificate
RENEW_DAYS = 30  # a node certificate this close to its end is re-issued by the next seed, and `status` warns


@dataclass(frozen=True)
class NodeTls:
    """What a node's document carries: the CA to trust and the node's own pair (PEM text); with an API
    certificate of the user's own, every node also trusts its issuer (api_ca) and the controllers present
    it on the VIP (api_cert, api_key)."""

    ca: str
    cert: str
    key: str
    api_ca: str = ""
    api_cert: str = ""
    api_key: str = ""

    @property
    def trusted(self) -> str:
        """The CA bundle every client on the node verifies with."""
        return self.ca + self.api_ca

    @property
    def vip_pair(self) -> str:
        """What HAProxy presents on the VIP: the user's API certificate, else the node's own (it names the VIP)."""
        return self.api_cert + self.api_key if self.api_cert else self.cert + self.key


NODE_FIELDS = ("ca", "cert", "key")
API_FIELDS = ("api_ca", "api_cert", "api_key")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def make_ca(cluster: str) -> dict[str, str]:
    """A new site CA: {cert, key} in PEM."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Goldstack"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"Goldstack site CA {cluster}")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return {"cert": _cert_pem(cert), "key": _key_pem(key)}


def _san(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in dict.fromkeys(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def issue(ca: dict[str, str], common_name: str, names: Iterable[str]) -> dict[str, str]:
    """A server-and-client certificate for `names` (host names and addresses), signed by the CA."""
    ca_cert = x509.load_pem_x509_certificate(ca["cert"].encode())
    ca_key = serialization.load_pem_private_key(ca["key"].encode(), None)
    key = _new_key()
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(min(now + datetime.timedelta(days=NODE_DAYS), ca_cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(_san([common_name, *names])), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    return {"cert": _cert_pem(cert), "key": _key_pem(key)}


# --- checks: each returns None or one message that says what is wrong and how to mend it

def _load_cert(pem: object) -> x509.Certificate | str:
    if not isinstance(pem, str) or "-----BEGIN CERTIFICATE-----" not in pem:
        return "is not a PEM certificate (-----BEGIN CERTIFICATE-----)"
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        return f"is not a readable PEM certificate ({exc})"


def _load_key(pem: object) -> ec.EllipticCurvePrivateKey | object | str:
    if not isinstance(pem, str) or "PRIVATE KEY-----" not in pem:
        return "is not a PEM private key"
    try:
        return serialization.load_pem_private_key(pem.encode(), None)
    except (ValueError, TypeError) as exc:
        return f"is not a readable unencrypted PEM private key ({exc})"


def _public_der(key: object) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_dates(cert: x509.Certificate, now: datetime.datetime) -> str | None:
    if cert.not_valid_after_utc <= now:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d}; issue a new one (re-run seed)"
    if cert.not_valid_before_utc > now:
        return f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check the clocks"
    return None


def _pair(cert_pem: object, key_pem: object, cert_field: str, key_field: str
          ) -> tuple[x509.Certificate | None, list[tuple[str, str]]]:
    """The certificate, once it and the key read and belong together; else the problems, by field."""
    cert = _load_cert(cert_pem)
    key = _load_key(key_pem)
    problems = [(f, m) for f, m in ((cert_field, cert), (key_field, key)) if isinstance(m, str)]
    if problems:
        return None, problems
    assert isinstance(cert, x509.Certificate)
    if _public_der(cert.public_key()) != _public_der(key.public_key()):  # type: ignore[union-attr]
        return None, [(key_field, "does not belong to the certificate (public keys differ)")]
    return cert, []


def check_ca(value: object, field: str = "ca", now: datetime.datetime | None = None) -> list[tuple[str, str]]:
    """A CA pair: {cert, key}, the key matching, the certificate a CA's and in date."""
    if not isinstance(value, dict) or set(value) != {"cert", "key"}:
        return [(field, "must be a mapping of cert and key (PEM)")]
    cert, problems = _pair(value["cert"], value["key"], f"{field}.cert", f"{field}.key")
    if cert is None:
        return problems
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        return [(f"{field}.cert", "is not a CA certificate (basicConstraints CA:TRUE)")]
    if msg := _check_dates(cert, now or _now()):
        return [(f"{field}.cert", msg)]
    return []


def cert_names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n) for n in san.get_values_for_type(x509.DNSName)} | \
        {str(a) for a in san.get_values_for_type(x509.IPAddress)}


def signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_issued(ca_pem: object, cert_pem: object, key_pem: object, names: Iterable[str],
                 fields: tuple[str, str, str], now: datetime.datetime | None = None) -> list[tuple[str, str]]:
    """A certificate with its key: the pair matches, `ca` signed it, both are in date, and it names `names`.
    `fields` name the CA, the certificate and the key in the messages."""
    ca_field, cert_field, key_field = fields
    now = now or _now()
    ca = _load_cert(ca_pem)
    if isinstance(ca, str):
        return [(ca_field, ca)]
    cert, problems = _pair(cert_pem, key_pem, cert_field, key_field)
    if cert is None:
        return problems
    if not signed_by(cert, ca):
        return [(cert_field, f"was not signed by the CA in {ca_field} ({ca.subject.rfc4514_string()}); "
                             "re-run seed, or give the CA that issued it")]
    for which, c in ((ca_field, ca), (cert_field, cert)):
        if msg := _check_dates(c, now):
            return [(which, msg)]
    missing = sorted(set(names) - cert_names(cert))
    if missing:
        return [(cert_field, f"does not name {', '.join(missing)} (subjectAltName); issue one that names "
                             "every address and host name it serves")]
    return []


def check_node(value: object, names: Iterable[str], field: str = "tls",
               now: datetime.datetime | None = None, api_names: Iterable[str] = ()) -> list[tuple[str, str]]:
    """A node's {ca, cert, key}, checked by check_issued; with an API certificate of the user's own, also
    {api_ca, api_cert, api_key} (the certificate naming `api_names`: the VIP)."""
    if (not isinstance(value, dict) or not set(NODE_FIELDS) <= set(value)
            or not set(value) <= set(NODE_FIELDS + API_FIELDS)):
        return [(field, "must be a mapping of ca, cert and key (PEM), and api_ca, api_cert, api_key with an API "
                        "certificate of your own; `seed` writes it")]
    problems = check_issued(value["ca"], value["cert"], value["key"], names,
                            (f"{field}.ca", f"{field}.cert", f"{field}.key"), now)
    if problems or not value.keys() & set(API_FIELDS):
        return problems
    if "api_ca" not in value:
        return [(f"{field}.api_ca", "is missing: the CA that issued the API certificate (every node trusts it)")]
    if ("api_cert" in value) != ("api_key" in value):
        return [(f"{field}.api_cert", "and api_key go together (a controller presents them on the VIP)")]
    if "api_cert" not in value:  # a compute or storage node: it only trusts the API certificate's issuer
        api_ca = _load_cert(value["api_ca"])
        return [(f"{field}.api_ca", api_ca)] if isinstance(api_ca, str) else []
    return check_issued(value["api_ca"], value["api_cert"], value["api_key"], api_names,
                        (f"{field}.api_ca", f"{field}.api_cert", f"{field}.api_key"), now)


def days_left(cert_pem: str, now: datetime.datetime | None = None) -> float:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return (cert.not_valid_after_utc - (now or _now())).total_seconds() / 86400


def still_good(entry: object, ca: dict[str, str], names: Iterable[str]) -> bool:
    """Whether a node pair kept from an earlier seed can stay: same CA, same names, far from its end."""
    if not isinstance(entry, dict) or set(entry) != {"cert", "key"}:
        return False
    value = {"ca": ca["cert"], **entry}
    names = set(names)
    if check_node(value, names):
        return False
    cert = x509.load_pem_x509_certificate(entry["cert"].encode())
    return cert_names(cert) == names and days_left(entry["cert"]) > RENEW_DAYS


def pem_secrets(pem: str) -> set[str]:
    """The strings of a private key a log filter must hide: the whole PEM and each line of its body."""
    return {pem, *(line for line in pem.splitlines() if line and not line.startswith("-----"))}
