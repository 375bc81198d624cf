"""Stanzas a client pipelines behind its bind request wait for the bind and keep their order.

(The rest of c2s negotiation is covered in tests/unit/test_c2s_negotiation.py.)
"""

from sakari.jid import JID
from sakari.stream.c2s import BindRequest, C2SStream, StanzaReceived, StreamSettings

HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)


def opened(require_encryption: bool = True) -> C2SStream:
    stream = C2SStream(StreamSettings("localhost", tls_available=True, require_encryption=require_encryption))
    stream.receive(HEADER)
    return stream


def test_bind_and_pipelined_stanzas_keep_their_order() -> None:
    stream = opened(require_encryption=False)
    stream.receive(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'/>")
    stream.user = "alice"  # authentication itself is covered above
    stream._restart()
    stream.receive(HEADER)
    events = stream.receive(
        b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>"
        b"<presence/><iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
    )
    assert events == [BindRequest("phone")]
    held = stream.bound(JID("alice", "localhost", "phone"))
    assert [e.stanza.name for e in held if isinstance(e, StanzaReceived)] == ["presence"]
    out = stream.data_to_send()
    assert b"<jid>alice@localhost/phone</jid>" in out
    assert b'<iq type="result" id="s1"/>' in out  # the legacy session request is simply acknowledged
