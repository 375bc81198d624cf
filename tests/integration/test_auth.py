"""Stream security and authentication: RFC 6120 §5 (STARTTLS), §6 (SASL),
RFC 5802 (SCRAM), RFC 5929 (tls-server-end-point), XEP-0368 (direct TLS)."""

import base64

import pytest
from cryptography import x509

from raw_xmpp import (
    RawStream,
    ScramClient,
    mechanisms_offered,
    scram_exchange,
    stream_error_in,
    tls_server_end_point,
)
from sakari_process import DOMAIN, run_cli
from xmpp_harness import (
    NS_SASL,
    NS_TLS,
    STREAM_HEADER,
    LoginFailed,
    describe,
    is_message,
    mechanism_used,
    q,
    tls_version,
)

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
async def test_scram_login_over_starttls_succeeds(xmpp, mechanism):
    client = await xmpp.login(mechanisms=[mechanism])
    assert mechanism_used(client) == mechanism
    assert tls_version(client) is not None, "session is not encrypted"
    assert client.jid == f"{client.bare}/test"


async def test_plain_login_over_tls_succeeds(xmpp):
    client = await xmpp.login(mechanisms=["PLAIN"])
    assert mechanism_used(client) == "PLAIN"
    assert tls_version(client) is not None


async def test_login_over_direct_tls_port_succeeds(xmpp):
    client = await xmpp.login(direct_tls=True, mechanisms=["SCRAM-SHA-256"])
    assert tls_version(client) is not None
    # The session is a normal one: it can chat with a STARTTLS session.
    other = await xmpp.login()
    client.message(other.jid, "over direct tls")
    await other.expect(is_message(body="over direct tls", sender=client.jid))


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"])
async def test_wrong_password_fails_with_not_authorized(xmpp, mechanism):
    account = xmpp.account()
    with pytest.raises(LoginFailed) as failure:
        await xmpp.login(account, password=account.password + "-wrong", mechanisms=[mechanism])
    assert (failure.value.reason, failure.value.detail) == ("failed_auth", "not-authorized")


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "PLAIN"])
async def test_unknown_user_fails_with_not_authorized(xmpp, mechanism):
    """Same answer as a wrong password: the server does not reveal which accounts exist."""
    account = xmpp.account()
    ghost = type(account)(f"nobody-{account.localpart}@{DOMAIN}", account.password)
    with pytest.raises(LoginFailed) as failure:
        await xmpp.login(ghost, mechanisms=[mechanism])
    assert (failure.value.reason, failure.value.detail) == ("failed_auth", "not-authorized")


async def _server_first(server, user: str) -> dict[str, str]:
    stream, _ = await _tls_stream(server)
    try:
        challenge = await stream.authenticate("SCRAM-SHA-256", ScramClient("SCRAM-SHA-256", user, "any").first())
        assert challenge.tag == q(NS_SASL, "challenge"), describe(challenge)
        return dict(kv.split("=", 1) for kv in base64.b64decode(challenge.text).decode().split(","))
    finally:
        stream.close()


async def test_unknown_user_gets_a_scram_challenge_shaped_like_a_real_accounts(xmpp, server):
    """RFC 5802 §9: a decoy salt, stable per name, so the first round trip does not reveal whether an account exists."""
    account = xmpp.account()
    real = await _server_first(server, account.localpart)
    ghost = await _server_first(server, f"nobody-{account.localpart}")
    assert ghost["i"] == real["i"]
    assert len(base64.b64decode(ghost["s"])) == len(base64.b64decode(real["s"]))
    assert ghost["s"] != real["s"]
    assert (await _server_first(server, f"nobody-{account.localpart}"))["s"] == ghost["s"]


async def test_non_ascii_password_is_accepted_by_scram(xmpp):
    account = xmpp.account()
    jid = f"unicode-{account.localpart}@{DOMAIN}"
    password = "pässwörd-\u00e9\u00df-\u2603"
    result = run_cli("user", "add", jid, "--password", password, "--data-dir", str(xmpp.server.data_dir))
    assert result.returncode == 0, result.stderr
    client = await xmpp.login(type(account)(jid, password), mechanisms=["SCRAM-SHA-256"])
    assert client.jid.startswith(jid)


async def test_starttls_is_required_and_plain_not_offered_before_tls(server):
    stream = await RawStream.connect(server.c2s_port)
    try:
        features = await stream.open()
        starttls = features.find(q(NS_TLS, "starttls"))
        assert starttls is not None, f"no STARTTLS offered: {describe(features)}"
        assert starttls.find(q(NS_TLS, "required")) is not None, f"STARTTLS not marked required: {describe(features)}"
        assert "PLAIN" not in mechanisms_offered(features), f"PLAIN offered in the clear: {describe(features)}"
    finally:
        stream.close()


async def test_tls_stream_offers_scram_plus_and_plain(server):
    stream = await RawStream.connect(server.c2s_port)
    try:
        await stream.open()
        await stream.starttls()
        offered = set(mechanisms_offered(await stream.open()))
        for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "PLAIN"]:
            assert mechanism in offered, f"{mechanism} not offered over TLS; offered: {sorted(offered)}"
    finally:
        stream.close()


async def test_auth_before_starttls_is_refused(xmpp, server):
    """With TLS required, credentials sent in the clear never log anyone in."""
    account = xmpp.account()
    stream = await RawStream.connect(server.c2s_port)
    try:
        await stream.open()
        await stream.send(
            f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>"
            + base64.b64encode(f"\0{account.localpart}\0{account.password}".encode()).decode()
            + "</auth>"
        )
        answer = await stream.next_element()
        assert answer is None or answer.tag != q(NS_SASL, "success"), "authenticated before STARTTLS"
        if answer is not None and answer.tag == q(NS_SASL, "failure"):
            return  # refused with a SASL failure (e.g. encryption-required)
        rest = ([answer] if answer is not None else []) + await stream.read_until_closed()
        assert stream_error_in(rest) is not None, f"neither SASL failure nor stream error: {stream.received[-400:]!r}"
    finally:
        stream.close()


async def _tls_stream(server) -> tuple[RawStream, list[str]]:
    stream = await RawStream.connect(server.c2s_port)
    await stream.open()
    await stream.starttls()
    features = await stream.open()
    return stream, mechanisms_offered(features)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"])
async def test_scram_plus_with_tls_server_end_point_succeeds(xmpp, server, mechanism):
    account = xmpp.account()
    stream, offered = await _tls_stream(server)
    try:
        assert mechanism in offered, f"{mechanism} not offered: {offered}"
        binding = tls_server_end_point(stream.peer_certificate())
        scram = ScramClient(mechanism, account.localpart, account.password, cb_type="tls-server-end-point", cb_data=binding)
        answer, scram = await scram_exchange(stream, scram, mechanism)
        assert answer.tag == q(NS_SASL, "success"), f"{mechanism} failed: {describe(answer)}"
        server_final = getattr(scram, "server_final", None) or base64.b64decode(answer.text or "")
        assert scram.verify(server_final), f"server signature does not verify: {server_final!r}"
        await stream.open()
        assert (await stream.bind("plus")).startswith(account.jid)
    finally:
        stream.close()


async def test_scram_plus_with_wrong_channel_binding_fails(xmpp, server):
    account = xmpp.account()
    stream, offered = await _tls_stream(server)
    try:
        assert "SCRAM-SHA-256-PLUS" in offered
        scram = ScramClient("SCRAM-SHA-256-PLUS", account.localpart, account.password,
                            cb_type="tls-server-end-point", cb_data=b"\x00" * 32)
        answer, _ = await scram_exchange(stream, scram, "SCRAM-SHA-256-PLUS")
        assert answer.tag == q(NS_SASL, "failure"), f"wrong channel binding accepted: {describe(answer)}"
    finally:
        stream.close()


async def test_scram_downgrade_flag_is_refused_when_plus_is_offered(xmpp, server):
    """RFC 5802 §6: gs2 flag 'y' means "I could bind but you don't offer it";
    a server that does offer -PLUS must fail it (a stripped -PLUS = an attack)."""
    account = xmpp.account()
    stream, offered = await _tls_stream(server)
    try:
        assert "SCRAM-SHA-256-PLUS" in offered
        scram = ScramClient("SCRAM-SHA-256", account.localpart, account.password, gs2_flag="y")
        answer, _ = await scram_exchange(stream, scram, "SCRAM-SHA-256")
        assert answer.tag == q(NS_SASL, "failure"), f"'y' flag accepted although -PLUS is offered: {describe(answer)}"
    finally:
        stream.close()


async def test_generated_certificate_names_the_domain(server):
    stream = await RawStream.connect(server.c2s_tls_port, tls=True)
    try:
        cert = x509.load_der_x509_certificate(stream.peer_certificate())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert DOMAIN in names
    finally:
        stream.close()


async def test_sasl_retry_after_failure_on_the_same_stream_succeeds(xmpp, server):
    """RFC 6120 §6.4.5: a failed attempt may be retried on the same stream."""
    account = xmpp.account()
    stream, _ = await _tls_stream(server)
    try:
        wrong = await stream.authenticate("PLAIN", f"\0{account.localpart}\0not-the-password".encode())
        assert wrong.tag == q(NS_SASL, "failure") and wrong.find(q(NS_SASL, "not-authorized")) is not None, describe(wrong)
        right = await stream.authenticate("PLAIN", f"\0{account.localpart}\0{account.password}".encode())
        assert right.tag == q(NS_SASL, "success"), describe(right)
    finally:
        stream.close()


async def test_sasl_abort_gets_aborted_failure(xmpp, server):
    account = xmpp.account()
    stream, _ = await _tls_stream(server)
    try:
        scram = ScramClient("SCRAM-SHA-256", account.localpart, account.password)
        challenge = await stream.authenticate("SCRAM-SHA-256", scram.first())
        assert challenge.tag == q(NS_SASL, "challenge"), describe(challenge)
        await stream.send(f"<abort xmlns='{NS_SASL}'/>")
        answer = await stream.next_element()
        assert answer is not None and answer.tag == q(NS_SASL, "failure"), stream.received[-300:]
        assert answer.find(q(NS_SASL, "aborted")) is not None, describe(answer)
    finally:
        stream.close()


async def test_plain_cannot_log_in_as_another_user_via_authzid(xmpp, server):
    attacker, victim = xmpp.account(), xmpp.account()
    stream, _ = await _tls_stream(server)
    try:
        answer = await stream.authenticate("PLAIN", f"{victim.jid}\0{attacker.localpart}\0{attacker.password}".encode())
        assert answer.tag == q(NS_SASL, "failure"), f"logged in as someone else: {describe(answer)}"
    finally:
        stream.close()


async def test_scram_cannot_log_in_as_another_user_via_authzid(xmpp, server):
    attacker, victim = xmpp.account(), xmpp.account()
    stream, _ = await _tls_stream(server)
    try:
        scram = ScramClient("SCRAM-SHA-256", attacker.localpart, attacker.password, authzid=victim.jid)
        answer, _ = await scram_exchange(stream, scram, "SCRAM-SHA-256")
        assert answer.tag == q(NS_SASL, "failure"), f"logged in as someone else: {describe(answer)}"
    finally:
        stream.close()


async def test_own_authzid_is_accepted(xmpp, server):
    account = xmpp.account()
    stream, _ = await _tls_stream(server)
    try:
        answer = await stream.authenticate("PLAIN", f"{account.jid}\0{account.localpart}\0{account.password}".encode())
        assert answer.tag == q(NS_SASL, "success"), describe(answer)
        await stream.open()
        assert (await stream.bind("authz")) == f"{account.jid}/authz"
    finally:
        stream.close()


async def test_unknown_sasl_mechanism_fails_with_invalid_mechanism(server):
    stream, _ = await _tls_stream(server)
    try:
        answer = await stream.authenticate("X-NOT-A-MECHANISM", b"hello")
        assert answer.tag == q(NS_SASL, "failure"), describe(answer)
        assert answer.find(q(NS_SASL, "invalid-mechanism")) is not None, describe(answer)
    finally:
        stream.close()


async def test_invalid_base64_in_auth_fails_with_incorrect_encoding(server):
    stream, _ = await _tls_stream(server)
    try:
        await stream.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>!!!not base64!!!</auth>")
        answer = await stream.next_element()
        assert answer is not None and answer.tag == q(NS_SASL, "failure"), stream.received[-300:]
        assert answer.find(q(NS_SASL, "incorrect-encoding")) is not None, describe(answer)
    finally:
        stream.close()


async def test_stream_to_unknown_domain_gets_host_unknown(server):
    stream = await RawStream.connect(server.c2s_port)
    try:
        await stream.send(STREAM_HEADER.replace(f"to='{DOMAIN}'", "to='not-served.example'"))
        received = await stream.read_until_closed()
        assert stream_error_in(received) == "host-unknown", stream.received[-400:]
    finally:
        stream.close()


async def test_stream_with_wrong_stream_namespace_gets_invalid_namespace(server):
    stream = await RawStream.connect(server.c2s_port)
    try:
        await stream.send(STREAM_HEADER.replace("http://etherx.jabber.org/streams", "urn:example:not-streams"))
        await stream.read_until_closed()
        # The reply uses the right namespace even though ours was wrong.
        assert b"invalid-namespace" in stream.received, stream.received[-400:]
    finally:
        stream.close()
