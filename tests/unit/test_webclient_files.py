"""The web client shows this server's uploaded files from its own page's address: which addresses count as ours."""

from sakari.modules.webclient import own_file_prefixes


def test_every_address_a_client_may_have_been_given_is_ours():
    assert own_file_prefixes("localhost", "", False, 5280, 5281) == [
        "http://localhost:5280/upload/", "https://localhost:5281/upload/",
    ]


def test_tls_on_the_http_port_and_a_public_origin():
    assert own_file_prefixes("chat.example.org", "https://chat.example.org/", True, 5280, 0) == [
        "https://chat.example.org/upload/", "https://chat.example.org:5280/upload/",
    ]


def test_a_public_url_with_a_path_is_left_alone():
    # Its files are under the path, and the page's origin + /upload/ is not where they are.
    assert own_file_prefixes("example.org", "https://example.org/chat", False, 0, 5281) == ["https://example.org:5281/upload/"]
