"""SCRAM credentials (RFC 5802, RFC 7677): the only form in which passwords are kept.

From a password we keep, per hash function, StoredKey and ServerKey over one
salt and iteration count. They let the server check a SCRAM proof, and a
PLAIN password by deriving the same keys, without ever being able to recover
the password.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

import precis_i18n

HASHES = {"SHA-1": "sha1", "SHA-256": "sha256"}
_PASSWORD = precis_i18n.get_profile("OpaqueString")


@dataclass(frozen=True, slots=True)
class ScramKeys:
    stored_key: bytes
    server_key: bytes


@dataclass(frozen=True, slots=True)
class Credentials:
    salt: bytes
    iterations: int
    keys: dict[str, ScramKeys]  # by SCRAM hash name: "SHA-1", "SHA-256"


def prepare_password(password: str) -> bytes:
    """RFC 7613 OpaqueString, the preparation SCRAM clients apply (SASLprep's successor)."""
    try:
        return _PASSWORD.enforce(password).encode()
    except UnicodeError as e:
        raise ValueError(f"invalid password: {e}") from None


def salted_password(hash_name: str, password: bytes, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(HASHES[hash_name], password, salt, iterations)


def keys_from_salted(hash_name: str, salted: bytes) -> ScramKeys:
    digest = HASHES[hash_name]
    client_key = hmac.digest(salted, b"Client Key", digest)
    return ScramKeys(
        stored_key=hashlib.new(digest, client_key).digest(),
        server_key=hmac.digest(salted, b"Server Key", digest),
    )


def derive(password: str, iterations: int, salt: bytes | None = None) -> Credentials:
    prepared = prepare_password(password)
    if not prepared:
        raise ValueError("the password is empty")
    salt = salt if salt is not None else os.urandom(16)
    return Credentials(
        salt,
        iterations,
        {h: keys_from_salted(h, salted_password(h, prepared, salt, iterations)) for h in HASHES},
    )


def decoy(secret: bytes, username: str, iterations: int) -> Credentials:
    """Credentials for an account that does not exist, so SCRAM answers as if it did (RFC 5802 §9).

    The salt is derived from the name with a per-server secret: asking twice
    gives the same salt, as for a real account, and nobody without the secret
    can tell it from a real one. The keys are random, so no proof matches.
    """
    salt = hmac.digest(secret, b"scram-decoy-salt\0" + username.encode(), "sha256")[:16]
    return Credentials(salt, iterations, {h: ScramKeys(os.urandom(32), os.urandom(32)) for h in HASHES})


def check_password(creds: Credentials, password: str) -> bool:
    """For SASL PLAIN: derive the keys from the offered password and compare in constant time."""
    try:
        prepared = prepare_password(password)
    except ValueError:
        return False
    keys = creds.keys["SHA-256"]
    candidate = keys_from_salted("SHA-256", salted_password("SHA-256", prepared, creds.salt, creds.iterations))
    return hmac.compare_digest(candidate.stored_key, keys.stored_key)
