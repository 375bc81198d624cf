"""XEP-0377 Spam Reporting: a ``<report/>`` inside a blocking command's item (XEP-0191) is kept for the admins.

A report holds who reported whom, when, the reason (spam or abuse), the reporter's text, and the stanza
ids the reporter named (so that an admin can ask the reporter for the messages). The server adds no
message content of its own: nothing is looked up in archives or offline stores. Whatever else the
reporter put inside ``<report/>`` (a forwarded copy of the message) is kept as sent, since the reporter
chose to show it. The block itself is the blocking module's, which runs after this one.

Reports are kept per reporter's domain, at most ``reports.max_reports`` (the oldest go first), until an
admin deletes them (``sakari reports --delete ID`` or ``--clear``) or the reporter's account is deleted.
Admins read them with ``sakari reports``.
"""

from __future__ import annotations

import datetime
import json
import secrets
import time
from dataclasses import asdict, dataclass, field

from sakari.config import declare, positive
from sakari.core import events as E
from sakari.core.events import AccountEvent, StanzaEvent
from sakari.core.modules import ModuleAPI
from sakari.jid import JIDError, parse_jid
from sakari.modules.blocking import NS as NS_BLOCKING
from sakari.modules.util import payload
from sakari.storage.base import MapStore, Storage

NS = "urn:xmpp:reporting:1"
NS_SID = "urn:xmpp:sid:0"
REASONS = ("urn:xmpp:reporting:spam", "urn:xmpp:reporting:abuse")
STORE = "spam-reports"
MAX_TEXT = 2000  # characters of the reporter's text that are kept

MAX_REPORTS = declare(
    "reports.max_reports", 1000, "Spam and abuse reports (XEP-0377) kept per domain; the oldest go first.", positive
)


@dataclass(slots=True)
class Report:
    id: str  # sorts by time
    time: float
    reporter: str  # bare JID
    jid: str  # the reported address
    reason: str
    text: str = ""
    stanza_ids: list[tuple[str, str]] = field(default_factory=list)  # (by, id) as the reporter named them
    included: str = ""  # what else the reporter put inside <report/>, as XML

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    def lines(self) -> list[str]:
        """The report for an admin to read: a headline with its id, then what the reporter gave."""
        when = datetime.datetime.fromtimestamp(self.time, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        lines = [f"{self.id}  {when}  {self.reason.rpartition(':')[2]}  {self.reporter} reported {self.jid}"]
        if self.text:
            lines.append(f"    text: {self.text!r}")
        lines += [f"    message: id={stanza_id} by={by}" for by, stanza_id in self.stanza_ids]
        if self.included:
            lines.append(f"    included by the reporter: {self.included}")
        return lines

    @classmethod
    def from_bytes(cls, data: bytes) -> Report:
        fields = json.loads(data)
        fields["stanza_ids"] = [tuple(pair) for pair in fields.get("stanza_ids", [])]
        return cls(**fields)


class Reports:
    """The reports of each domain, for the module and for ``sakari reports``."""

    def __init__(self, storage: Storage) -> None:
        self.store: MapStore = storage.map(STORE)

    async def add(self, domain: str, report: Report, keep: int) -> None:
        await self.store.set(domain, report.id, report.to_bytes())
        ids = sorted(await self.store.items(domain))
        for old in ids[: max(0, len(ids) - keep)]:
            await self.store.set(domain, old, None)

    async def list(self, domain: str) -> list[Report]:
        return [Report.from_bytes(data) for _, data in sorted((await self.store.items(domain)).items())]

    async def delete(self, domain: str, report_id: str) -> bool:
        if await self.store.get(domain, report_id) is None:
            return False
        await self.store.set(domain, report_id, None)
        return True

    async def clear(self, domain: str) -> int:
        count = len(await self.store.items(domain))
        await self.store.clear(domain)
        return count

    async def forget_reporter(self, domain: str, reporter: str) -> None:
        for report in await self.list(domain):
            if report.reporter == reporter:
                await self.store.set(domain, report.id, None)


def reports_in(event: StanzaEvent) -> list[Report]:
    """The reports inside a block command, one per item that carries one."""
    found = []
    now = time.time()
    for item in payload(event).find_all("item", NS_BLOCKING):
        report = item.find("report", NS)
        if report is None:
            continue
        try:
            jid = str(parse_jid(item.attrs.get("jid", "")))
        except JIDError:
            continue  # the blocking module refuses the command
        reason = report.attrs.get("reason", "")
        found.append(Report(
            id=f"{time.time_ns():020d}-{secrets.token_hex(3)}",
            time=now,
            reporter=str(event.from_jid.bare),
            jid=jid,
            reason=reason if reason in REASONS else REASONS[0],
            text=(report.child_text("text", NS) or "")[:MAX_TEXT],
            stanza_ids=[(sid.attrs.get("by", ""), sid.attrs.get("id", "")) for sid in report.find_all("stanza-id", NS_SID)],
            included="".join(
                el.serialize("") for el in report.elements() if (el.ns, el.name) not in ((NS, "text"), (NS_SID, "stanza-id"))
            ),
        ))
    return found


def setup(mod: ModuleAPI) -> None:
    mod.depends("blocking")
    reports = Reports(mod.storage)

    async def take_reports(event: StanzaEvent) -> None:
        """Keep the reports, then let the blocking module block (this returns nothing)."""
        domain = event.from_jid.domain
        for report in reports_in(event):
            await reports.add(domain, report, mod.option(MAX_REPORTS, host=domain))
            mod.log.info("event=spam-report reason=%s", report.reason.rpartition(":")[2])

    async def forget_reporter(event: AccountEvent) -> None:
        await reports.forget_reporter(event.host, f"{event.user}@{event.host}")

    mod.add_feature(NS)
    for reason in REASONS:
        mod.add_feature(reason)
    mod.hook(f"iq-set/self/{NS_BLOCKING}:block", take_reports, priority=10)
    mod.hook(E.ACCOUNT_DELETED, forget_reporter)

