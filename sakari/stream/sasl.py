"""SASL mechanisms, server side, sans-IO: SCRAM-SHA-1/-256 with and without -PLUS, and PLAIN.

SCRAM is written here rather than taken from a library because the server
must look credentials up asynchronously between the client's first message
and its answer, and check channel bindings it computes itself; the
exchange is short and fully specified by RFC 5802 and RFC 7677, and the
tests check it against independent client implementations.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

from sakari.credentials import HASHES, Credentials


class SaslFailure(Exception):
    """Ends the exchange with a SASL failure condition (RFC 6120 §6.5)."""

    def __init__(self, condition: str, text: str | None = None) -> None:
        super().__init__(condition if not text else f"{condition}: {text}")
        self.condition = condition
        self.text = text


@dataclass(slots=True)
class Identity:
    username: str  # the authentication identity, as the client sent it (before preparation)
    authzid: str | None


def _unescape_saslname(name: str) -> str:
    if "=" in name:
        parts = name.split("=")
        out = [parts[0]]
        for part in parts[1:]:
            if part.startswith("2C"):
                out.append("," + part[2:])
            elif part.startswith("3D"):
                out.append("=" + part[2:])
            else:
                raise SaslFailure("malformed-request", "bad escape in username")
        name = "".join(out)
    return name


def _b64decode(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise SaslFailure("incorrect-encoding") from None


class ScramServer:
    """One SCRAM exchange: ``start`` → look up credentials → ``first`` → ``final``."""

    def __init__(self, hash_name: str, plus: bool, channel_bindings: dict[str, bytes]) -> None:
        self.hash_name = hash_name
        self.digest = HASHES[hash_name]
        self.plus = plus
        self.channel_bindings = channel_bindings  # binding type → data, for this TLS connection
        self._gs2_header = b""
        self._client_first_bare = ""
        self._nonce = ""
        self._server_first = ""
        self._creds: Credentials | None = None

    def start(self, client_first: bytes) -> Identity:
        try:
            text = client_first.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("malformed-request", "not UTF-8") from None
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise SaslFailure("malformed-request")
        cb_flag, authz, bare = parts
        if cb_flag.startswith("p="):
            if not self.plus:
                raise SaslFailure("malformed-request", "channel binding requested with a non-PLUS mechanism")
            cb_type = cb_flag[2:]
            if cb_type not in self.channel_bindings:
                raise SaslFailure("malformed-request", f"unsupported channel binding type {cb_type}")
            self._cb_data = self.channel_bindings[cb_type]
        elif self.plus:
            raise SaslFailure("malformed-request", "a PLUS mechanism needs channel binding")
        elif cb_flag == "y" and self.channel_bindings:
            # RFC 5802 §6: the client thinks we don't support binding, but we do: a downgrade.
            raise SaslFailure("not-authorized", "channel binding downgrade detected")
        elif cb_flag not in ("n", "y"):
            raise SaslFailure("malformed-request")
        authzid = None
        if authz:
            if not authz.startswith("a="):
                raise SaslFailure("malformed-request")
            authzid = _unescape_saslname(authz[2:])
        attrs = bare.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            raise SaslFailure("malformed-request")
        self._gs2_header = f"{cb_flag},{authz},".encode()
        self._client_first_bare = bare
        client_nonce = attrs[1][2:]
        if not client_nonce:
            raise SaslFailure("malformed-request", "empty nonce")
        self._nonce = client_nonce + base64.b64encode(os.urandom(18)).decode()
        return Identity(_unescape_saslname(attrs[0][2:]), authzid)

    def first(self, creds: Credentials) -> bytes:
        self._creds = creds
        self._server_first = (
            f"r={self._nonce},s={base64.b64encode(creds.salt).decode()},i={creds.iterations}"
        )
        return self._server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        """Check the client's proof; returns the server-final message (verifier)."""
        creds = self._creds
        assert creds is not None
        try:
            text = client_final.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("malformed-request") from None
        without_proof, sep, proof_attr = text.rpartition(",p=")
        if not sep:
            raise SaslFailure("malformed-request", "no proof")
        attrs = dict(a.split("=", 1) for a in without_proof.split(",") if "=" in a)
        expected_cb = self._gs2_header + (getattr(self, "_cb_data", b"") if self.plus else b"")
        if _b64decode(attrs.get("c", "")) != expected_cb:
            raise SaslFailure("not-authorized", "channel binding mismatch")
        if attrs.get("r") != self._nonce:
            raise SaslFailure("not-authorized", "nonce mismatch")
        proof = _b64decode(proof_attr)
        keys = creds.keys[self.hash_name]
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        signature = hmac.digest(keys.stored_key, auth_message, self.digest)
        if len(proof) != len(signature):
            raise SaslFailure("not-authorized")
        size = len(proof)  # XOR as integers: a generator over the bytes costs more than the two HMACs
        client_key = (int.from_bytes(proof) ^ int.from_bytes(signature)).to_bytes(size)
        if not hmac.compare_digest(hashlib.new(self.digest, client_key).digest(), keys.stored_key):
            raise SaslFailure("not-authorized")
        verifier = hmac.digest(keys.server_key, auth_message, self.digest)
        return b"v=" + base64.b64encode(verifier)


def parse_plain(message: bytes) -> tuple[Identity, str]:
    """RFC 4616: authzid NUL authcid NUL password."""
    parts = message.split(b"\x00")
    if len(parts) != 3:
        raise SaslFailure("malformed-request")
    try:
        authzid, authcid, password = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        raise SaslFailure("malformed-request") from None
    if not authcid or not password:
        raise SaslFailure("malformed-request")
    return Identity(authcid, authzid or None), password

