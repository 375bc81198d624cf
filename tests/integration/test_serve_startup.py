"""``sakari serve`` refuses to start, with one clear line and no traceback,
when it cannot run safely."""

import socket

from sakari_process import HOST, SakariServer


def _message_without_traceback(result) -> str:
    output = (result.stderr + result.stdout).strip()
    assert "Traceback" not in output, f"a crash, not a message:\n{output}"
    return output.lower()


def test_second_server_on_the_same_data_dir_refuses_to_start(make_server):
    first = make_server(name="first-server")
    second = SakariServer(first.data_dir, name="second-server")
    result = second.serve_expecting_exit()
    assert result.returncode != 0
    message = _message_without_traceback(result)
    assert "data" in message or str(first.data_dir).lower() in message, message
    assert first.running, "the first server must be unaffected"


def test_port_in_use_makes_serve_exit_with_a_message_naming_the_port(make_server):
    server = make_server(name="port-clash-server", start=False)
    with socket.socket() as squatter:
        squatter.bind((HOST, server.c2s_port))
        squatter.listen()
        result = server.serve_expecting_exit()
    assert result.returncode != 0
    assert str(server.c2s_port) in _message_without_traceback(result), result.stderr
