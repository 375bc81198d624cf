"""Automatic certificates through ACME (RFC 8555), with the HTTP-01 challenge served on Sakari's own HTTP port.

The protocol is the ``acme`` library's (certbot's client, maintained by the EFF); this module only decides when to
ask, answers the challenges and keeps the files. In ``data_dir/certs``:

- ``acme-account.key``: the account's key (JWK, readable by the owner only), so that renewals use the same account;
- ``acme.crt`` and ``acme.key``: the certificate (full chain) for every served domain, and its key.

The certificate is asked for when there is none, when it does not name every served domain, or when it ends within
``tls.acme_renew_before`` days; the server then reloads it as on SIGHUP, so open sessions stay. The library is
blocking (``requests``): the work runs in a thread, and only the challenge answers are shared with the event loop.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sakari.config import declare, non_negative

log = logging.getLogger(__name__)

ENABLED = declare(
    "tls.acme", False,
    "Get the server's certificate automatically from an ACME certificate authority (Let's Encrypt by default), "
    "with the HTTP-01 challenge answered on network.http_port: port 80 of every served domain must reach it. "
    "tls.certificate, when set, still comes first.",
)
DIRECTORY_URL = declare(
    "tls.acme_directory", "https://acme-v02.api.letsencrypt.org/directory",
    "The ACME directory of the certificate authority. Let's Encrypt's staging directory "
    "(https://acme-staging-v02.api.letsencrypt.org/directory) is for trying things out.",
)
EMAIL = declare("tls.acme_email", "", "Contact address given to the certificate authority (expiry notices). Empty: none.")
CA_FILE = declare(
    "tls.acme_ca_file", "",
    "CA certificates (PEM) to trust for the ACME directory's own HTTPS, besides the system's: for a private ACME server.",
)
RENEW_BEFORE = declare(
    "tls.acme_renew_before", 30.0,
    "Days before its end that the ACME certificate is renewed (checked at start, on SIGHUP and every 12 hours).",
    non_negative,
)

CHALLENGE_PATH = "/.well-known/acme-challenge/{token}"
ACCOUNT_KEY, CERT, KEY = "acme-account.key", "acme.crt", "acme.key"
ACCOUNT_URL = "acme-account.json"
ORDER_TIMEOUT = datetime.timedelta(minutes=3)


@dataclass
class Challenges:
    """HTTP-01 answers while an order is open: token → key authorization (RFC 8555 §8.3)."""

    answers: dict[str, str] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        answer = self.answers.get(request.match_info["token"])
        if answer is None:
            raise web.HTTPNotFound()
        return web.Response(text=answer, content_type="application/octet-stream")


def due(cert_path: Path, domains: list[str], now: datetime.datetime, renew_before: datetime.timedelta) -> str | None:
    """Why a new certificate is needed (missing, ending, not naming a domain), or None."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except FileNotFoundError:
        return "none yet"
    except ValueError:
        return "unreadable"
    if cert.not_valid_after_utc - renew_before <= now:
        return f"ends {cert.not_valid_after_utc:%Y-%m-%d}"
    try:
        names = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = set()
    missing = [d for d in domains if d not in names]
    return f"does not name {','.join(missing)}" if missing else None


def _write_private(path: Path, data: bytes) -> None:
    """Atomically, readable by the owner only: a reader never sees half a key, nobody else sees it at all."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


async def obtain_in_thread(
    directory: Path, domains: list[str], url: str, email: str, ca_file: str, challenges: Challenges
) -> Path:
    """:func:`obtain` in a daemon thread of its own, not the loop's executor: a CA that does not answer keeps the
    library waiting for minutes, and the executor's threads are waited for when the server stops."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Path] = loop.create_future()

    def settle(result: Path | None, error: BaseException | None) -> None:
        if future.done():
            return  # cancelled: the server is stopping
        if error is not None:
            future.set_exception(error)
        else:
            assert result is not None
            future.set_result(result)

    def work() -> None:
        result: Path | None = None
        error: BaseException | None = None
        try:
            result = obtain(directory, domains, url, email, ca_file, challenges)
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task, which decides
            error = e
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop is closed: the server has stopped, nobody waits for this any more

    threading.Thread(target=work, name="acme-order", daemon=True).start()
    return await future


def obtain(directory: Path, domains: list[str], url: str, email: str, ca_file: str, challenges: Challenges) -> Path:
    """Order a certificate for ``domains`` and write it (blocking: run it in a thread). Returns its path."""
    import josepy  # imported here: only servers with ACME on need the library loaded
    from acme import challenges as acme_challenges
    from acme import client, crypto_util, errors, messages

    directory.mkdir(parents=True, exist_ok=True)
    account_path = directory / ACCOUNT_KEY
    if account_path.exists():
        account_key = josepy.JWK.json_loads(account_path.read_text())
    else:
        account_key = josepy.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        _write_private(account_path, account_key.json_dumps().encode())
    net = client.ClientNetwork(account_key, alg=josepy.ES256, verify_ssl=ca_file or True, user_agent="sakari")
    acme = client.ClientV2(client.ClientV2.get_directory(url, net), net=net)
    registration = messages.NewRegistration.from_data(email=email or None, terms_of_service_agreed=True)
    try:
        acme.new_account(registration)
    except errors.ConflictError as e:  # the key has an account already (a renewal): use it
        net.account = messages.RegistrationResource(uri=e.location, body=messages.Registration())
    _write_private(directory / ACCOUNT_URL, json.dumps({"url": net.account.uri, "directory": url}).encode())

    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    order = acme.new_order(crypto_util.make_csr(key_pem, domains))
    tokens = []
    try:
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue  # proven recently (a renewal): the CA reuses the authorization, nothing to answer
            challenge = next(
                (c for c in authorization.body.challenges if isinstance(c.chall, acme_challenges.HTTP01)), None
            )
            if challenge is None:
                raise ValueError(f"the CA offers no HTTP-01 challenge for {authorization.body.identifier.value}")
            response, validation = challenge.response_and_validation(account_key)
            token = challenge.chall.encode("token")
            challenges.answers[token] = validation
            tokens.append(token)
            acme.answer_challenge(challenge, response)
        deadline = datetime.datetime.now() + ORDER_TIMEOUT
        order = acme.poll_and_finalize(order, deadline)
    finally:
        for token in tokens:
            challenges.answers.pop(token, None)
    # The key first: a certificate beside a key that is not its own would not load.
    _write_private(directory / KEY, key_pem)
    _write_private(directory / CERT, order.fullchain_pem.encode())
    return directory / CERT
