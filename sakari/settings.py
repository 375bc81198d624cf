"""Options of the core server (modules declare their own next to their code)."""

from typing import Any

from sakari.config import Field, declare, declare_tables, non_negative, one_of, port, positive
from sakari.jid import JIDError, parse_jid, prep_domain


def bare_accounts(value: Any) -> str | None:
    for text in value:
        try:
            jid = parse_jid(text)
        except JIDError as e:
            return f"holds {text!r}, which is not an address: {e.text}"
        if jid.resource or not jid.local:
            return f"holds {text!r}; give bare account addresses such as admin@example.org"
    return None


DOMAIN = declare("domain", "localhost", "The domain this server serves: the part after @ in your users' addresses.")
ADMINS = declare(
    "admins",
    [],
    "Administrators, as bare addresses (\"admin@example.org\"). Modules give them rights: owning every group chat room, "
    "admin commands. Other domains besides 'domain' are served by adding a [host.\"example.net\"] table, which may "
    "set that host's own values of per-host keys.",
    bare_accounts,
)
DATA_DIR = declare(
    "data_dir", "data", "Where the database and the generated certificate live (relative to the working directory)."
)
LOG_LEVEL = declare("log_level", "info", "Log level: debug, info, warning or error. Logs never contain message bodies or IP addresses.",
    one_of("debug", "info", "warning", "error"),
)

BIND = declare("network.bind", ["127.0.0.1"], "Addresses to listen on. Use [\"0.0.0.0\", \"::\"] to serve the network.")
C2S_PORT = declare("network.c2s_port", 5222, "Client connections with STARTTLS (RFC 6120). 0 disables.", port)
C2S_TLS_PORT = declare("network.c2s_tls_port", 5223, "Client connections with direct TLS (XEP-0368). 0 disables.", port)
HTTP_PORT = declare(
    "network.http_port", 5280, "HTTP port: a health check at /health, and the web modules' routes (WebSocket, BOSH, uploads). 0 disables.", port
)
HTTPS_PORT = declare(
    "network.https_port",
    5281,
    "The HTTP port's routes again, over TLS with the server's certificate. File upload links point here unless "
    "http.public_url or http.tls says otherwise, since Dino and Conversations upload over https only. 0 disables.",
    port,
)
COMPONENT_PORT = declare(
    "network.component_port",
    5347,
    "External components (XEP-0114: bridges such as biboumi or slidge) connect here; the port is open only when "
    "[[components]] are configured. 0 disables.",
    port,
)
S2S_PORT = declare(
    "network.s2s_port", 5269, "Server-to-server connections (federation, RFC 6120) while s2s.enabled. 0: no incoming ones.", port
)
S2S_TLS_PORT = declare(
    "network.s2s_tls_port",
    0,
    "Server-to-server connections with direct TLS (XEP-0368) while s2s.enabled: other servers that find an "
    "_xmpps-server._tcp SRV record connect here with TLS from the first byte. 5270 is usual. 0: none.",
    port,
)

def _domain(value: Any) -> str | None:
    try:
        prep_domain(value)
    except JIDError as e:
        return f"is not a domain: {e.text}"
    return None


def _secret(value: Any) -> str | None:
    return None if value else "must not be empty"


ROSTER_ACCESS = ("none", "get", "set", "both")
IQ_ACCESS = ("get", "set", "both")


def _privileges(value: Any) -> str | None:
    """XEP-0356 grants: roster and message access, and iq access per namespace."""
    for key, grant in value.items():
        if key == "roster" and grant not in ROSTER_ACCESS:
            return f"roster must be one of {', '.join(ROSTER_ACCESS)}"
        if key == "message" and grant not in ("none", "outgoing"):
            return "message must be \"none\" or \"outgoing\""
        if key == "iq" and (
            not isinstance(grant, dict) or not all(isinstance(v, str) and v in IQ_ACCESS for v in grant.values())
        ):
            return f"iq must be a table of namespaces, each {', '.join(IQ_ACCESS)}"
        if key == "roster_push" and not isinstance(grant, bool):
            return "roster_push must be true or false"
        if key not in ("roster", "roster_push", "message", "iq"):
            return f"has no '{key}' (there are: roster, roster_push, message, iq)"
    return None


COMPONENTS = declare_tables(
    "components",
    (
        Field("domain", "", "the component's domain; its subdomains are its too.", _domain, required=True),
        Field("secret", "", "the shared secret of its handshake.", _secret, required=True),
        Field("name", "", "its name in service discovery."),
        Field(
            "privileges",
            {},
            "XEP-0356 grants, e.g. { roster = \"both\", message = \"outgoing\", "
            "iq = { \"http://jabber.org/protocol/pubsub\" = \"both\" } }. With roster \"get\" or \"both\" the "
            "component also gets every roster push of every local account, unless roster_push = false.",
            _privileges,
        ),
    ),
    "External components (XEP-0114), e.g. bridges to IRC or Matrix; they connect to network.component_port.",
)

TLS_CERT = declare(
    "tls.certificate",
    "",
    "PEM certificate (chain) covering every served domain; reread on SIGHUP. Empty: the one 'sakari cert import' put "
    "in the data directory, or else one issued by a local certificate authority made there (see the operator guide).",
)
TLS_KEY = declare("tls.key", "", "PEM private key for tls.certificate.")

REQUIRE_ENCRYPTION = declare(
    "c2s.require_encryption", True, "Require TLS before authentication. Turn off only on loopback or for benchmarks."
)
ALLOW_PLAIN = declare("c2s.allow_plain", True, "Offer SASL PLAIN (only ever over TLS) for clients without SCRAM.")
AUTH_TIMEOUT = declare("c2s.auth_timeout", 30.0, "Seconds a new connection has to authenticate and bind a resource.", positive)

MAX_STANZA_SIZE = declare("limits.max_stanza_size", 262144, "Largest stanza in bytes; a bigger one ends the stream with policy-violation.", positive)
MAX_DEPTH = declare("limits.max_depth", 64, "Deepest XML nesting inside a stanza.", positive)
RATE_BYTES = declare(
    "limits.c2s_rate_bytes", 65536, "Bytes per second one client connection may send; reading pauses beyond it. 0: unlimited.", non_negative
)
RATE_BURST = declare("limits.c2s_rate_burst", 524288, "Bytes a client may send at once before the rate applies.", non_negative)
MAX_SEND_BUFFER = declare(
    "limits.max_send_buffer", 4194304, "Bytes queued for a client that does not read; past it the client is disconnected.", positive
)
SEND_HIGH_WATER = declare(
    "limits.send_high_water",
    262144,
    "Bytes queued for a client above which the server stops reading from the clients whose stanzas fill that queue, "
    "until it drains to a quarter of this.",
    positive,
)
SEND_STALL_TIMEOUT = declare(
    "limits.send_stall_timeout", 60.0, "Seconds a client's queue may stay above send_high_water before it is disconnected.", positive
)

SCRAM_ITERATIONS = declare("auth.scram_iterations", 10000, "PBKDF2 iterations for new passwords (SCRAM).", positive)

STORAGE_BACKEND = declare("storage.backend", "sqlite", "Where data lives. \"sqlite\": one file in the data directory; \"postgresql\": a database server at storage.url.")

# The core of instant messaging (RFC 6121) and the server's own services.
CORE_MODULES = [
    "roster", "presence", "offline", "disco", "ping", "time", "last", "vcard", "private", "blocking", "contact_info",
]
DEFAULT_MODULES = [
    *CORE_MODULES, "caps",
    # Phones and several devices: stream management, carbons, client state, the archive, push, fast logins.
    "smacks", "carbons", "csi", "mam", "push", "fast",
    # End-to-end encryption (and e2ee.required, off by default), avatars, bookmarks (PEP), vCards kept in step with
    # PEP profiles, a pubsub service.
    "pep", "e2ee_policy", "vcard_legacy", "bookmarks", "pubsub",
    # Group chat, file sharing and calls.
    "muc", "upload", "proxy65", "extdisco",
    # The web client, invitations and registration by invitation, the account page, admin commands, spam reports.
    "webclient", "register", "admin_commands", "spam_reports",
]
MODULES = declare(
    "modules.enabled",
    DEFAULT_MODULES,
    "Protocol modules to load. \"version\" (XEP-0092) is off by default so the server does not disclose its version.",
)
