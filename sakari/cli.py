"""The ``sakari`` command: serve, manage accounts, check and explain the configuration."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import getpass
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sakari import __version__
from sakari import config as C
from sakari import settings as S
from sakari.credentials import derive
from sakari.jid import JIDError, parse_jid, prep_domain
from sakari.net import control
from sakari.net.throttle import LOG_IP


class CLIError(Exception):
    """A problem to report in one line, exit status 2."""


# serve's flags that override a listener's port
PORT_FLAGS = (
    ("c2s-port", S.C2S_PORT), ("c2s-tls-port", S.C2S_TLS_PORT), ("http-port", S.HTTP_PORT), ("https-port", S.HTTPS_PORT),
    ("s2s-port", S.S2S_PORT), ("s2s-tls-port", S.S2S_TLS_PORT),
)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML configuration file (default: built-in defaults)")
    p.add_argument("--data-dir", help="data directory (overrides data_dir)")
    p.add_argument("--domain", help="the served domain (overrides domain)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sakari", description="Sakari, a privacy-first XMPP server.")
    parser.add_argument("--version", action="version", version=f"sakari {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server in the foreground", description="Run the server in the foreground; stop it with SIGTERM or Ctrl-C.")
    _add_common(serve)
    serve.add_argument("--bind", action="append", help="address to listen on (repeat for several; overrides network.bind)")
    serve.add_argument("--public", action="store_true", help="serve the network, not only this machine: listen on every address (0.0.0.0 and ::), links on the HTTPS port at this machine's address, invitations and the web client on; prints the addresses and an invitation link (docs/web.md)")
    for name, option in PORT_FLAGS:
        serve.add_argument(f"--{name}", type=int, help=f"overrides {option.key} (default {option.default})")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="overrides log_level")
    serve.add_argument("--log-ip", action="store_true", default=None, help="write client IP addresses into the log (sets log_ip; off by default)")
    serve.set_defaults(func=cmd_serve)

    user = sub.add_parser("user", help="manage accounts (works while the server runs)", description="Manage accounts.")
    usub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = usub.add_parser("add", help="create an account, or many from a file", description="Create an account (asks for the password when --password is absent), or many from a file of 'JID PASSWORD' lines.")
    _add_common(add)
    add.add_argument("jid", nargs="?", help="the account's address, e.g. alice@localhost")
    add.add_argument("--password", help="the password (prompted for when absent)")
    add.add_argument("--from-file", type=Path, help="file with one 'JID PASSWORD' per line ('-' for standard input)")
    add.set_defaults(func=cmd_user_add)
    passwd = usub.add_parser("passwd", help="change an account's password", description="Change an account's password.")
    _add_common(passwd)
    passwd.add_argument("jid")
    passwd.add_argument("--password", help="the new password (prompted for when absent)")
    passwd.set_defaults(func=cmd_user_passwd)
    delete = usub.add_parser("delete", help="delete an account and all of its data", description="Delete an account and all of its data (roster, offline messages, vCard, private storage, block list).")
    _add_common(delete)
    delete.add_argument("jid")
    delete.set_defaults(func=cmd_user_delete)
    lst = usub.add_parser("list", help="list accounts", description="List the accounts, one address per line.")
    _add_common(lst)
    lst.set_defaults(func=cmd_user_list)
    export = usub.add_parser(
        "export", help="write an account's data as XEP-0227 XML",
        description="Write an account's data (credentials, roster, vCard, PEP nodes, private XML, block list, offline "
        "messages, archive) as one XEP-0227 document. It holds the SCRAM keys and messages: keep it as safe as the database.",
    )
    _add_common(export)
    export.add_argument("jid")
    export.add_argument("-o", "--output", type=Path, help="file to write, readable by its owner only (default: standard output)")
    export.add_argument("--no-archive", action="store_true", help="leave the message archive out")
    export.set_defaults(func=cmd_user_export)
    imp = usub.add_parser(
        "import", help="create accounts from a XEP-0227 file",
        description="Create the accounts of a XEP-0227 document (from 'sakari user export' or another server) with their data. "
        "An account that exists is refused: delete it first.",
    )
    _add_common(imp)
    imp.add_argument("file", help="the XML document ('-' for standard input)")
    imp.set_defaults(func=cmd_user_import)

    invite = sub.add_parser("invite", help="invite people to make an account (works while the server runs)", description="Invitations (XEP-0401): a link to a web page with a QR code and a form, and an xmpp: URI that apps open.")
    isub = invite.add_subparsers(dest="invite_command", required=True, metavar="ACTION")
    create = isub.add_parser("create", help="make an invitation and print its link", description="Make an invitation and print its web link and its xmpp: URI. The register module serves the link.")
    _add_common(create)
    create.add_argument("--admin", action="store_true", help="the account made with it administers the server")
    create.add_argument("--expires", default="7d", metavar="DURATION", help="how long it stays valid: 30m, 12h, 7d, 2w (default 7d)")
    create.add_argument("--uses", type=int, default=1, metavar="N", help="how many accounts it may make (default 1)")
    create.add_argument("--contact-of", metavar="JID", help="an account whose contact each new account becomes, both seeing each other's presence (XEP-0379)")
    create.set_defaults(func=cmd_invite_create)

    cfg = sub.add_parser("config", help="check or explain the configuration", description="Check or explain the configuration.")
    csub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = csub.add_parser("check", help="validate a configuration file", description="Validate a configuration file; every problem is named with its line.")
    check.add_argument("--config", type=Path, required=True, help="the file to check")
    check.set_defaults(func=cmd_config_check)
    example = csub.add_parser("example", help="print an annotated configuration with every key and its default", description="Print an annotated configuration file with every key and its default.")
    example.set_defaults(func=cmd_config_example)
    reference = csub.add_parser("reference", help="print the configuration reference (Markdown)", description="Print the configuration reference in Markdown (docs/configuration.md).")
    reference.set_defaults(func=cmd_config_reference)
    cert = sub.add_parser("cert", help="the server's TLS certificate", description="The server's TLS certificate.")
    certsub = cert.add_subparsers(dest="cert_command", required=True, metavar="ACTION")
    imp = certsub.add_parser(
        "import",
        help="use a certificate issued elsewhere, e.g. by certbot",
        description="Check a certificate and its key (they match, name every served domain, are valid now) and copy "
        "them into the data directory; the server uses them from its next start, or at once on SIGHUP.",
    )
    _add_common(imp)
    imp.add_argument("certificate", type=Path, help="PEM certificate chain, the server's first (certbot: fullchain.pem)")
    imp.add_argument("key", type=Path, help="its PEM private key, without a passphrase (certbot: privkey.pem)")
    imp.set_defaults(func=cmd_cert_import)
    reports = sub.add_parser(
        "reports", help="spam and abuse reports users sent (XEP-0377)",
        description="List the spam and abuse reports users sent with their blocks (XEP-0377), oldest first, or delete them.",
    )
    _add_common(reports)
    reports.add_argument("--delete", metavar="ID", action="append", help="delete this report (repeat for several)")
    reports.add_argument("--clear", action="store_true", help="delete every report")
    reports.set_defaults(func=cmd_reports)

    storage = sub.add_parser("storage", help="move the data to another database", description="Move the data to another database.")
    ssub = storage.add_subparsers(dest="storage_command", required=True, metavar="ACTION")
    copy = ssub.add_parser("copy", help="copy every store of the configured backend to another database", description="Copy every store of the configured backend (accounts, rosters, offline messages, archives…) to another database. Stop the server first.")
    _add_common(copy)
    copy.add_argument("--to", required=True, metavar="URL", help="postgresql://user:password@host:port/database, or sqlite:///path/to/file")
    copy.add_argument("--force", action="store_true", help="replace the data the target already holds")
    copy.set_defaults(func=cmd_storage_copy)
    return parser


def load_config(args: argparse.Namespace) -> C.Config:
    config = C.Config.load(args.config)
    config.override(S.DATA_DIR, getattr(args, "data_dir", None))
    config.override(S.DOMAIN, getattr(args, "domain", None))
    return config


# --- serve -----------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    config = load_config(args)
    config.override(S.BIND, args.bind)
    for name, option in PORT_FLAGS:
        config.override(option, getattr(args, name.replace("-", "_")))
    _check_modules(config, str(args.config or "the default configuration"))
    config.override(LOG_IP, args.log_ip)
    if args.public:
        _serve_public(config, bound=args.bind is not None)
    level = args.log_level or config[S.LOG_LEVEL]
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from sakari.errors import StartError
    from sakari.server import Server

    try:
        import uvloop
    except ImportError:
        runner: Callable[[Any], Any] = asyncio.run
    else:
        runner = uvloop.run
    try:
        server = Server(config)
        runner(server.run())
    except (ValueError, JIDError, StartError) as e:
        raise CLIError(str(e)) from None
    return 0


PUBLIC_MODULES = ("register", "webclient")  # what a phone's browser needs: the invitation page and the web client


def _serve_public(config: C.Config, bound: bool) -> None:
    """``serve --public``: listen beyond loopback, with links (invitations, apps' upload slots) on the HTTPS port at a
    name of this machine, and an invitation to print.

    As Prosody does, plain HTTP and HTTPS are separate ports. The HTTP port stays plain: the local CA's download is
    there (a phone that does not trust the CA yet gets it without a certificate warning), and so is this machine's
    browser; nothing on it takes a password from another machine (web logins, the invitation's form and the account
    page need a confidential channel). Only without an HTTPS port does TLS go on the HTTP port itself."""
    from sakari.net.addresses import public_addresses
    from sakari.net.local_ca import DOWNLOAD_PATH
    from sakari.net.web import HTTP_TLS, PUBLIC_URL

    if not bound:
        config.override(S.BIND, ["0.0.0.0", "::"])
    config.override(S.MODULES, [*config[S.MODULES], *(m for m in PUBLIC_MODULES if m not in config[S.MODULES])])
    addresses = public_addresses()
    domain = _domains(config)[0]
    # The domain, when it names this machine (--domain laptop.local, or its address): the certificate names it, so
    # apps upload there. "localhost" names every device itself: then the address, for browsers.
    address = (f"[{addresses[0]}]" if addresses[0].version == 6 else str(addresses[0])) if addresses else ""
    host = address if domain == "localhost" else domain
    http_port, https_port = config[S.HTTP_PORT], config[S.HTTPS_PORT]
    local_tls = not config[PUBLIC_URL]  # no proxy in front: TLS is ours
    if local_tls:
        if not https_port:
            config.override(HTTP_TLS, True)
        if host:
            config.override(PUBLIC_URL, f"https://{host}:{https_port or http_port}")
    print("Serving the network. This machine's addresses:")
    for found in addresses or ["(none found: is the network up?)"]:
        print(f"  {found}")
    print(f"Web client: {config[PUBLIC_URL] or f'https://<address>:{https_port or http_port}'}/ "
          "(the certificate is this server's own: the browser asks to accept it, unless the device trusts its CA)")
    if local_tls and http_port and https_port:
        print(f"This server's CA, for devices to trust: http://{host or '<address>'}:{http_port}{DOWNLOAD_PATH} "
              "(compare its fingerprint with the one in the log)")
    print(f"XMPP apps: port {config[S.C2S_PORT]}, accounts named user@{domain}")
    if domain == "localhost":
        print("  (apps on phones need a domain that names this machine: --domain with its name or address)")
    links = _make_invitation(config, domain, time.time() + 86400, uses=1, admin=False, inviter=None)
    print(f"Invitation for one account, valid one day: {links.page}")
    print(f"  for apps: {links.uri}", flush=True)


# --- accounts ----------------------------------------------------------------------
def _domains(config: C.Config) -> list[str]:
    """The domains with accounts here: ``domain`` first, then each [host."…"] table's."""
    try:
        return [prep_domain(config[S.DOMAIN]), *(prep_domain(name) for name in config.hosts)]
    except JIDError as e:
        raise CLIError(f"the configuration names a domain that is not valid: {e.text}") from None


def _owner(jid_text: str, domains: list[str]) -> str:
    domain = domains[0]
    if any(c.isspace() for c in jid_text):
        raise CLIError(f"invalid address {jid_text!r}: an address cannot contain spaces")
    try:
        jid = parse_jid(jid_text if "@" in jid_text else f"{jid_text}@{domain}")
    except JIDError as e:
        raise CLIError(f"invalid address {jid_text!r}: {e.text}") from None
    if not jid.local or jid.resource:
        raise CLIError(f"invalid address {jid_text!r}: give a bare address like alice@{domain}")
    if jid.domain not in domains:
        raise CLIError(
            f"this server serves {', '.join(domains)}, not {jid.domain} "
            "(use --domain, the config's domain, or a [host.\"…\"] table for another domain)"
        )
    return str(jid)


def _ask_password(jid: str) -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\n")
        if not line:
            raise CLIError("no password given (use --password or type it on standard input)")
        return line
    first = getpass.getpass(f"Password for {jid}: ")
    if first != getpass.getpass("Again: "):
        raise CLIError("the passwords differ")
    return first


def _password(args: argparse.Namespace, owner: str) -> str:
    return args.password if args.password is not None else _ask_password(owner)


def _credentials(config: C.Config, password: str, where: str) -> Any:
    try:
        return derive(password, config[S.SCRAM_ITERATIONS])
    except ValueError as e:
        raise CLIError(f"{where}: {e}") from None


def _with_storage(config: C.Config, action: Callable[[Any], Any]) -> Any:
    from sakari.errors import StartError
    from sakari.storage import open_storage

    async def run() -> Any:
        storage = open_storage(config)
        await storage.open()
        try:
            return await action(storage)
        finally:
            await storage.close()

    try:
        return asyncio.run(run())
    except StartError as e:  # storage cannot be opened: say why in one line
        raise CLIError(str(e)) from None


def _parse_account_lines(lines: list[str], source: str, domains: list[str]) -> list[tuple[str, str]]:
    accounts, problems, seen = [], [], set()
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        jid, _, password = line.partition(" ")
        password = password.strip()
        try:
            if "@" not in jid:
                # A bare name is taken on the command line, not here: in "liam smith@example.org pw" it would
                # make the account liam with the password "smith@example.org pw".
                raise CLIError(f"the line must start with a full address such as {jid}@{domains[0]}, then the password")
            owner = _owner(jid, domains)
            if not password:
                raise CLIError("no password on this line")
            if owner in seen:
                raise CLIError(f"{owner} appears twice")
        except CLIError as e:
            problems.append(f"{source}:{number}: {e}")
            continue
        seen.add(owner)
        accounts.append((owner, password))
    if problems:
        raise CLIError("\n".join(problems))
    return accounts


def cmd_user_add(args: argparse.Namespace) -> int:
    config = load_config(args)
    domains = _domains(config)
    if args.from_file is not None:
        if args.jid or args.password:
            raise CLIError("give either JID or --from-file, not both")
        try:
            text = sys.stdin.read() if str(args.from_file) == "-" else args.from_file.read_text(encoding="utf-8")
        except OSError as e:
            raise CLIError(f"{args.from_file}: cannot read: {e.strerror}") from None
        accounts = _parse_account_lines(text.splitlines(), str(args.from_file), domains)
        # PBKDF2 releases the GIL: derive the keys on every core (a class of 30 takes a moment, 10,000 a minute).
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            creds = list(zip((o for o, _ in accounts), pool.map(lambda a: _credentials(config, a[1], a[0]), accounts)))

        async def add_many(storage: Any) -> list[bool]:
            return list(await asyncio.gather(*(storage.accounts.create(o, c) for o, c in creds)))

        created = _with_storage(config, add_many)
        existing = [o for (o, _), ok in zip(creds, created) if not ok]
        count = sum(created)
        print(f"created {count} account{'' if count == 1 else 's'}")
        if existing:
            print("already existed, left unchanged: " + ", ".join(existing), file=sys.stderr)
            return 1
        return 0
    if not args.jid:
        raise CLIError("give the account's address (JID) or --from-file")
    owner = _owner(args.jid, domains)
    creds = _credentials(config, _password(args, owner), owner)
    if not _with_storage(config, lambda st: st.accounts.create(owner, creds)):
        raise CLIError(f"{owner} already exists")
    print(f"created {owner}")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    config = load_config(args)
    owner = _owner(args.jid, _domains(config))
    creds = _credentials(config, _password(args, owner), owner)
    if not _with_storage(config, lambda st: st.accounts.set_credentials(owner, creds)):
        raise CLIError(f"{owner} does not exist")
    # A running server keeps the credentials of recent logins in memory: the old password must stop working now.
    answer = control.request(Path(config[S.DATA_DIR]), "account-changed", jid=owner)
    if answer is not None and "error" in answer:
        raise CLIError(f"password changed, but the running server did not take it: {answer['error']}")
    print(f"password changed for {owner}")
    return 0


def cmd_user_delete(args: argparse.Namespace) -> int:
    config = load_config(args)
    owner = _owner(args.jid, _domains(config))
    # A running server must end the account's sessions too, so it does the deleting when it runs.
    answer = control.request(Path(config[S.DATA_DIR]), "delete-account", jid=owner)
    if answer is not None and "error" in answer:
        raise CLIError(answer["error"])
    deleted = answer["deleted"] if answer is not None else _with_storage(config, lambda st: _delete_stopped(st, owner))
    if not deleted:
        raise CLIError(f"{owner} does not exist")
    print(f"deleted {owner} and all of its data")
    return 0


async def _delete_stopped(storage: Any, owner: str) -> bool:
    """Delete an account while the server is stopped: its rows, and what is kept per domain about it (the spam
    reports it sent), which the running server drops on its account-deleted event."""
    from sakari.modules.spam_reports import Reports

    deleted = await storage.accounts.delete(owner)
    await Reports(storage).forget_reporter(owner.rpartition("@")[2], owner)
    return deleted


def cmd_user_list(args: argparse.Namespace) -> int:
    config = load_config(args)
    domains = set(_domains(config))
    for owner in _with_storage(config, lambda st: st.accounts.list()):
        if owner.rpartition("@")[2] not in domains:
            continue
        print(owner)
    return 0


def cmd_user_export(args: argparse.Namespace) -> int:
    from sakari.modules.register.export import export_account

    config = load_config(args)
    jid = parse_jid(_owner(args.jid, _domains(config)))

    async def export(storage: Any) -> bytes | None:
        if await storage.accounts.get(str(jid)) is None:
            return None
        return await export_account(storage, jid, credentials=True, archive=not args.no_archive)

    data = _with_storage(config, export)
    if data is None:
        raise CLIError(f"{jid} does not exist")
    document = b"<?xml version='1.0' encoding='utf-8'?>\n" + data + b"\n"
    if args.output is None:
        sys.stdout.buffer.write(document)
        return 0
    try:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # SCRAM keys and messages: owner only
        with os.fdopen(fd, "wb") as out:
            out.write(document)
    except OSError as e:
        raise CLIError(f"cannot write {args.output}: {e.strerror}") from None
    print(f"exported {jid} to {args.output}", file=sys.stderr)
    return 0


def cmd_user_import(args: argparse.Namespace) -> int:
    from sakari.modules.register import export as pie

    config = load_config(args)
    domains = _domains(config)
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as e:
        raise CLIError(f"cannot read {args.file}: {e.strerror}") from None

    try:
        imported = _with_storage(config, lambda st: pie.import_document(st, data, domains, config[S.SCRAM_ITERATIONS]))
    except pie.PortableDataError as e:
        raise CLIError(f"{args.file}: {e}") from None
    for done in imported:
        print(
            f"imported {done.owner}: {done.roster} contacts, {done.nodes} PEP nodes, "
            f"{done.offline} offline messages, {done.archived} archived messages"
        )
    return 0


# --- invitations -------------------------------------------------------------------
def _make_invitation(config: C.Config, host: str, expires: float, uses: int, admin: bool, inviter: str | None) -> Any:
    """Store an invitation; its links as the running server makes them (http.public_url, or the domain and port)."""
    from sakari.modules.register.service import invite_links
    from sakari.modules.register.tokens import STORE, Invite, InviteStore
    from sakari.modules.upload import base_url

    invite = Invite(expires, uses, admin, inviter)
    token = _with_storage(config, lambda storage: InviteStore(storage.documents(STORE)).create(host, invite))
    return invite_links(base_url(_ConfigOptions(config, _domains(config)[0])), host, token, inviter)  # type: ignore[arg-type]


def cmd_invite_create(args: argparse.Namespace) -> int:
    from sakari.modules.register.tokens import parse_duration

    config = load_config(args)
    domains = _domains(config)
    try:
        expires = time.time() + parse_duration(args.expires)
    except ValueError as e:
        raise CLIError(f"--expires: {e}") from None
    if args.uses < 1:
        raise CLIError("--uses: an invitation makes at least one account")
    inviter = _owner(args.contact_of, domains) if args.contact_of else None
    host = inviter.rpartition("@")[2] if inviter else domains[0]
    links = _make_invitation(config, host, expires, args.uses, args.admin, inviter)
    print(links.page)
    print(links.uri)
    valid = time.strftime("%Y-%m-%d %H:%M", time.localtime(expires))
    print(f"valid until {valid} for {args.uses} account{'' if args.uses == 1 else 's'}{', as administrator' if args.admin else ''}", file=sys.stderr)
    if "register" not in config[S.MODULES]:
        print("note: the register module is not enabled (modules.enabled): the link works once it is", file=sys.stderr)
    return 0


class _ConfigOptions:
    """The configuration seen as a module sees it (``option``, ``domain``), for helpers written for modules."""

    def __init__(self, config: C.Config, domain: str) -> None:
        self.option = config.__getitem__
        self.domain = domain


# --- configuration -----------------------------------------------------------------
def _check_modules(config: C.Config, where: str) -> None:
    """Unknown names in modules.enabled, found before anything is created on disk."""
    from sakari.core.modules import available_modules

    known = available_modules()
    unknown = [name for name in config[S.MODULES] if name not in known]
    if unknown:
        raise CLIError(
            f"{where}: 'modules.enabled' names no such module: {', '.join(unknown)} (there are: {', '.join(known)})"
        )


def cmd_config_check(args: argparse.Namespace) -> int:
    _check_modules(C.Config.load(args.config), str(args.config))
    print(f"{args.config}: valid")
    return 0


def cmd_config_example(args: argparse.Namespace) -> int:
    sys.stdout.write(C.example())
    return 0


def cmd_config_reference(args: argparse.Namespace) -> int:
    sys.stdout.write(C.reference_markdown())
    return 0


# --- certificates ------------------------------------------------------------------
def cmd_cert_import(args: argparse.Namespace) -> int:
    from sakari.net import certificates, tls

    config = load_config(args)
    if config[S.TLS_CERT]:
        raise CLIError(
            f"the configuration's tls.certificate ({config[S.TLS_CERT]}) comes before an imported certificate: "
            "remove it from the configuration first, or replace the files it names"
        )
    directory = Path(config[S.DATA_DIR]) / certificates.DIRECTORY
    now = datetime.datetime.now(datetime.UTC)
    try:
        cert, problems = certificates.import_files(args.certificate, args.key, directory, _domains(config), now)
    except ValueError as e:
        raise CLIError(str(e)) from None
    for problem in problems:
        print(f"warning: the certificate {problem.text}", file=sys.stderr)
    print(
        f"imported into {directory} (SHA-256 {tls.fingerprint(cert)}, valid until {cert.not_valid_after_utc:%Y-%m-%d}); "
        "the server uses it from its next start, or at once on SIGHUP (systemctl reload sakari)"
    )
    return 0


# --- storage -----------------------------------------------------------------------
def cmd_reports(args: argparse.Namespace) -> int:
    from sakari.modules.spam_reports import Reports

    config = load_config(args)
    domains = _domains(config)

    async def act(storage: Any) -> list[str]:
        reports, lines = Reports(storage), []
        for domain in domains:
            if args.clear:
                lines.append(f"deleted {await reports.clear(domain)} reports of {domain}")
            for report_id in args.delete or ():
                if await reports.delete(domain, report_id):
                    lines.append(f"deleted report {report_id}")
            if args.clear or args.delete:
                continue
            for report in await reports.list(domain):
                lines += report.lines()
        return lines

    lines = _with_storage(config, act)
    if args.delete and not any(line.startswith("deleted report") for line in lines):
        raise CLIError(f"no report {', '.join(args.delete)}")
    print("\n".join(lines) if lines else "no reports")
    return 0


def cmd_storage_copy(args: argparse.Namespace) -> int:
    from sakari.storage.copy import copy_to

    config = load_config(args)
    copied = _with_storage(config, lambda source: copy_to(source, args.to, config, force=args.force))
    for table, rows in copied.items():
        print(f"{table}: {rows}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except C.ConfigError as e:
        print("\n".join(e.problems), file=sys.stderr)
        return 2
    except CLIError as e:
        print(f"sakari: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
