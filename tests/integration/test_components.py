"""External components (XEP-0114) against a real server: slixmpp's ComponentXMPP and slixmpp clients."""

from __future__ import annotations

import pytest
import pytest_asyncio

from component_helpers import ComponentFailed, connect_component
from sakari_process import DOMAIN, free_ports
from xmpp_harness import error_condition, is_message, is_message_error, q

NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_VERSION = "jabber:iq:version"

COMPONENTS = {
    "echo.localhost": "echo-secret",
    "gateway.localhost": "gateway-secret",
    "again.localhost": "again-secret",
    "strict.localhost": "strict-secret",
    "idle.localhost": "idle-secret",  # configured, never connected
}


@pytest.fixture(scope="module")
def component_server(spawn_server):
    (port,) = free_ports(1)
    tables = "".join(
        f'[[components]]\ndomain = "{domain}"\nsecret = "{secret}"\nname = "{domain.split(".")[0]} bridge"\n'
        for domain, secret in COMPONENTS.items()
    )
    with spawn_server("component-server", f"[network]\ncomponent_port = {port}\n\n{tables}") as srv:
        srv.component_port = port
        yield srv


@pytest_asyncio.fixture
async def users(component_server, session_for):
    return session_for(component_server)


@pytest_asyncio.fixture
async def components(component_server):
    made = []

    async def connect(domain: str, secret: str | None = None, plugins: tuple[str, ...] = ()):
        component = await connect_component(component_server.component_port, domain, secret or COMPONENTS[domain], plugins)
        made.append(component)
        return component

    yield connect
    for component in made:
        component.abort()


async def test_component_and_user_exchange_messages(users, components) -> None:
    echo = await components("echo.localhost")
    alice = await users.login()
    alice.message("bot@echo.localhost", "hello bridge")
    got = await echo.inbox.wait_for(is_message("hello bridge"), "the user's message at the component")
    assert got.get("from") == alice.jid and got.get("to") == "bot@echo.localhost"
    echo.send(f"<message from='bot@echo.localhost' to='{alice.jid}' type='chat'><body>hello human</body></message>")
    await alice.inbox.wait_for(is_message("hello human", sender="bot@echo.localhost"))
    # To the bare JID too, with the delivery rules of a user's account.
    echo.send(f"<message from='bot@echo.localhost/r' to='{alice.bare}' type='chat'><body>to your account</body></message>")
    await alice.inbox.wait_for(is_message("to your account", sender="bot@echo.localhost/r"))


async def test_component_answers_a_users_iq_and_queries_the_server(users, components) -> None:
    echo = await components("echo.localhost", plugins=("xep_0092",))
    echo.xmpp.plugin["xep_0092"].software_name = "Echo"
    alice = await users.login()
    result = await alice.iq("get", f"<query xmlns='{NS_VERSION}'/>", to="echo.localhost")
    assert result.find(f"{q(NS_VERSION, 'query')}/{q(NS_VERSION, 'name')}").text == "Echo"
    # The component asks the server (disco#info of the domain) and gets its answer.
    info = await echo.xmpp.plugin["xep_0030"].get_info(jid=DOMAIN, ifrom="echo.localhost", timeout=10)
    assert ("server", "im") in {identity[:2] for identity in info["disco_info"]["identities"]}


async def test_component_serves_its_subdomains(users, components) -> None:
    gateway = await components("gateway.localhost")
    alice = await users.login()
    alice.message("room@rooms.gateway.localhost", "to a subdomain")
    await gateway.inbox.wait_for(is_message("to a subdomain"))
    gateway.send(f"<message from='room@rooms.gateway.localhost/nick' to='{alice.jid}'><body>from a subdomain</body></message>")
    await alice.inbox.wait_for(is_message("from a subdomain", sender="room@rooms.gateway.localhost/nick"))


async def test_several_components_at_once_each_get_their_own_stanzas(users, components) -> None:
    echo = await components("echo.localhost")
    gateway = await components("gateway.localhost")
    alice = await users.login()
    alice.message("a@gateway.localhost", "for the gateway")
    alice.message("a@echo.localhost", "for echo")
    await gateway.inbox.wait_for(is_message("for the gateway"))
    await echo.inbox.wait_for(is_message("for echo"))
    assert not any(m.find(q("jabber:client", "body")).text == "for echo" for m in gateway.inbox.history if m.find(q("jabber:client", "body")) is not None)


async def test_components_are_listed_in_disco_items_of_the_server(users) -> None:
    alice = await users.login()
    result = await alice.iq("get", f"<query xmlns='{NS_DISCO_ITEMS}'/>", to=DOMAIN)
    items = {i.get("jid"): i.get("name") for i in result.find(q(NS_DISCO_ITEMS, "query"))}
    assert items["echo.localhost"] == "echo bridge" and "idle.localhost" in items


async def test_a_configured_component_that_is_not_connected_is_service_unavailable(users) -> None:
    alice = await users.login()
    alice.message("someone@idle.localhost", "anyone there?")
    error = await alice.inbox.wait_for(is_message_error(sender="someone@idle.localhost"))
    assert error_condition(error) == "service-unavailable"
    condition, _ = await alice.iq_error("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to="idle.localhost")
    assert condition == "service-unavailable"


async def test_a_component_reconnecting_replaces_its_old_stream_with_conflict(users, components) -> None:
    first = await components("again.localhost")
    second = await components("again.localhost")
    await first.expect_disconnect()
    assert first.stream_errors == ["conflict"]
    alice = await users.login()
    alice.message("x@again.localhost", "to the new stream")
    await second.inbox.wait_for(is_message("to the new stream"))


async def test_a_wrong_secret_is_not_authorized(components) -> None:
    with pytest.raises(ComponentFailed) as failed:
        await components("echo.localhost", secret="gateway-secret")
    assert (failed.value.reason, failed.value.detail) == ("stream_error", "not-authorized")


async def test_an_unconfigured_domain_is_host_unknown(components, component_server) -> None:
    with pytest.raises(ComponentFailed) as failed:
        await connect_component(component_server.component_port, "nobody.localhost", "whatever")
    assert (failed.value.reason, failed.value.detail) == ("stream_error", "host-unknown")


async def test_a_from_outside_the_components_domain_ends_its_stream_with_invalid_from(users, components) -> None:
    strict = await components("strict.localhost")
    alice = await users.login()
    strict.send(f"<message from='someone@echo.localhost' to='{alice.jid}'><body>spoofed</body></message>")
    await strict.expect_disconnect()
    assert strict.stream_errors == ["invalid-from"]
    # Nothing reached the user: a round trip through the server shows the spoof did not come before it.
    await alice.ping_server()
    assert not any(el.find(q("jabber:client", "body")) is not None for el in alice.inbox.history)


async def test_a_component_writing_to_a_domain_not_served_here_gets_an_error_and_stays(users, components) -> None:
    gateway = await components("gateway.localhost")
    gateway.send("<message from='u@gateway.localhost' to='a@elsewhere.example' id='far'><body>x</body></message>")
    error = await gateway.inbox.wait_for(is_message_error(sender="a@elsewhere.example"))
    assert error_condition(error) == "remote-server-not-found"
    alice = await users.login()
    alice.message("b@gateway.localhost", "still connected")
    await gateway.inbox.wait_for(is_message("still connected"))


def test_no_component_port_is_opened_without_components(server) -> None:
    assert not any("service=component" in line for line in server.log)
    assert any("service=c2s " in line for line in server.log)
