"""Reading XEP-0227 documents for 'sakari user import': what is refused, and credentials as other servers write them."""

from __future__ import annotations

import asyncio
import pytest

from sakari.credentials import check_password, derive
from sakari.modules.register.export import (
    PortableDataError,
    _scram_element,
    accounts_in,
    credentials_of,
    import_document,
    parse_document,
)

PIE = "urn:xmpp:pie:0"


def document(user: str = "<user name='alice'/>", host: str = "example.org") -> bytes:
    return f"<?xml version='1.0'?>\n<!-- from another server -->\n<server-data xmlns='{PIE}'><host jid='{host}'>{user}</host></server-data>".encode()


def test_a_document_with_a_declaration_and_comments_is_read() -> None:
    [(owner, user)] = accounts_in(parse_document(document()))
    assert owner == "alice@example.org" and user.name == "user"


def test_entity_declarations_are_refused_before_anything_expands() -> None:
    bomb = b"<!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;'>]><server-data xmlns='urn:xmpp:pie:0'>&b;</server-data>"
    with pytest.raises(PortableDataError, match="declares entities"):
        parse_document(bomb)


@pytest.mark.parametrize("data", [b"<server-data", b"<roster xmlns='jabber:iq:roster'/>", document(user="")])
def test_what_is_not_a_xep_0227_document_with_users_is_refused(data: bytes) -> None:
    with pytest.raises(PortableDataError):
        accounts_in(parse_document(data))


def test_an_invalid_user_name_is_named() -> None:
    with pytest.raises(PortableDataError, match="'a b'"):
        accounts_in(parse_document(document("<user name='a b'/>")))


def test_scram_credentials_come_back_as_they_were_exported() -> None:
    creds = derive("secret words", 4096)
    user = parse_document(document("<user name='alice'/>"))
    [(_, el)] = accounts_in(user)
    for hash_name, keys in creds.keys.items():
        el.append(_scram_element(hash_name, creds, keys))
    assert credentials_of(el, 10000) == creds
    assert check_password(credentials_of(el, 10000), "secret words")


def test_keys_under_another_salt_than_sha_256s_are_left_out() -> None:
    sha256 = derive("pw", 4096)
    sha1 = derive("pw", 4096)
    [(_, el)] = accounts_in(parse_document(document()))
    el.append(_scram_element("SHA-256", sha256, sha256.keys["SHA-256"]))
    el.append(_scram_element("SHA-1", sha1, sha1.keys["SHA-1"]))
    creds = credentials_of(el, 10000)
    assert creds is not None and list(creds.keys) == ["SHA-256"] and creds.salt == sha256.salt


def test_a_plaintext_password_attribute_is_turned_into_keys() -> None:
    [(_, el)] = accounts_in(parse_document(document("<user name='alice' password='from prosody'/>")))
    creds = credentials_of(el, 4096)
    assert creds is not None and creds.iterations == 4096 and check_password(creds, "from prosody")


class Accounts:
    """Just enough storage for an import that fails at its second account, before any data is written."""

    def __init__(self) -> None:
        self.rows: dict[str, object] = {}

    async def create(self, owner: str, creds: object) -> bool:
        return self.rows.setdefault(owner, creds) is creds

    async def delete(self, owner: str) -> bool:
        return self.rows.pop(owner, None) is not None


def test_a_document_is_imported_whole_or_not_at_all() -> None:
    storage = type("Storage", (), {"accounts": Accounts()})()
    data = (f"<server-data xmlns='{PIE}'><host jid='example.org'><user name='alice' password='a'/>"
            "<user name='bob'/></host></server-data>").encode()  # bob has no credentials
    with pytest.raises(PortableDataError, match="bob@example.org: no <scram-credentials/>"):
        asyncio.run(import_document(storage, data, ["example.org"], 4096))
    assert storage.accounts.rows == {}  # alice, made first, was taken away again
