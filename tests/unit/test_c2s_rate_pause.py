"""A client connection's rate pauses: the longer of two pauses wins. Each read first takes the byte rate's pause
(limits.c2s_rate_bytes), then the account's stanza rate pause (limits.stanza_rate); before, the second was dropped
while the first was under way, so a flood of small stanzas was held only to the byte rate."""

from __future__ import annotations


from sakari.net.c2s import C2SConnection

import test_c2s_connection as fakes  # the fake transport and port of the connection's other unit tests


class RecordingTransport(fakes.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def connection() -> tuple[C2SConnection, RecordingTransport]:
    conn = C2SConnection(fakes.client_port(), direct_tls=False)
    transport = RecordingTransport()
    conn.connection_made(transport)
    return conn, transport


async def test_a_longer_pause_lengthens_the_pause_under_way() -> None:
    conn, transport = connection()
    now = conn.loop.time()
    conn._pause_for(0.05)  # the byte rate's
    conn._pause_for(30.0)  # the stanza rate's, for the same read
    assert transport.paused
    assert conn._rate_timer is not None and conn._rate_timer.when() >= now + 30.0


async def test_a_shorter_pause_does_not_cut_the_pause_under_way() -> None:
    conn, transport = connection()
    now = conn.loop.time()
    conn._pause_for(30.0)
    conn._pause_for(0.05)
    assert transport.paused
    assert conn._rate_timer is not None and conn._rate_timer.when() >= now + 30.0


async def test_reading_resumes_when_the_pause_ends() -> None:
    conn, transport = connection()
    conn._pause_for(30.0)
    assert conn._rate_timer is not None
    conn._rate_timer.cancel()
    conn._rate_resume()  # what the timer does
    assert not transport.paused and conn._rate_timer is None
