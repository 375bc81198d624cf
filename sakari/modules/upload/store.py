"""Uploaded files on disk: slots, the per-user quota, expiry and deletion with the account.

The file system is the whole store, so a file and what is known about it
cannot drift apart::

    uploads/slots/<slot>/meta.json    who (a hash of the account), name, size, type, times
    uploads/slots/<slot>/file         the bytes, once uploaded (never named after the user's file name)
    uploads/owners/<hash>/<slot>      one empty marker per slot: the quota and account deletion read these

A slot's id is a random capability: knowing it is what allows the upload
and the download. Clock times are passed in, so tests need no waiting.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path

SLOT_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")
MAX_NAME_BYTES = 200
UPLOAD_GRACE = 3600.0  # seconds an upload that began in time may take before its unfilled slot is swept
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


class SlotRefused(Exception):
    """A slot cannot be given: ``reason`` is "too-large", "quota" or "bad-name"."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text


@dataclass(slots=True)
class Slot:
    id: str
    owner: str  # hash of the account, not the address
    name: str
    size: int
    content_type: str
    created: float
    uploaded: float | None = None  # when the file arrived


def clean_name(name: str) -> str:
    """A file name safe to show and to put in a URL: the last path segment, no control characters."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", name).strip()
    while len(name.encode()) > MAX_NAME_BYTES:
        name = name[:-1]
    if name in ("", ".", ".."):
        raise SlotRefused("bad-name", "the file needs a name")
    return name


class UploadStore:
    def __init__(self, root: Path, max_size: int, quota: int, slot_lifetime: float, expire_after: float) -> None:
        self.slots = root / "slots"
        self.owners = root / "owners"
        self.max_size = max_size
        self.quota = quota
        self.slot_lifetime = slot_lifetime  # seconds to upload into a slot
        self.expire_after = expire_after  # seconds a file is kept; 0: until its owner deletes the account

    @staticmethod
    def owner_key(account: str) -> str:
        return hashlib.sha256(account.encode()).hexdigest()[:32]

    # --- slots ----------------------------------------------------------------------
    def used(self, account: str) -> int:
        """Bytes the account holds or has reserved in open slots."""
        total = 0
        for marker in self._markers(self.owner_key(account)):
            slot = self.get(marker.name)
            if slot is not None:
                total += slot.size
        return total

    def create(self, account: str, name: str, size: int, content_type: str, now: float) -> Slot:
        if size <= 0:
            raise SlotRefused("bad-size", "the size must be a positive number of bytes")
        if size > self.max_size:
            raise SlotRefused("too-large", f"files may have at most {self.max_size} bytes")
        if self.quota and self.used(account) + size > self.quota:
            raise SlotRefused("quota", f"your files would take more than your {self.quota} bytes")
        slot = Slot(secrets.token_urlsafe(24), self.owner_key(account), clean_name(name), size, content_type, now)
        directory = self.slots / slot.id
        directory.mkdir(parents=True)
        self._write_meta(slot)
        (self.owners / slot.owner).mkdir(parents=True, exist_ok=True)
        (self.owners / slot.owner / slot.id).touch()
        return slot

    def get(self, slot_id: str) -> Slot | None:
        if not SLOT_ID.match(slot_id):
            return None
        try:
            return Slot(**json.loads((self.slots / slot_id / "meta.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def file(self, slot: Slot) -> Path:
        return self.slots / slot.id / "file"

    def partial(self, slot: Slot) -> Path:
        return self.slots / slot.id / "partial"

    def open_for_upload(self, slot: Slot, now: float) -> bool:
        """Whether a PUT may fill this slot now: not yet filled, not expired."""
        return slot.uploaded is None and now - slot.created <= self.slot_lifetime

    def complete(self, slot: Slot, now: float) -> None:
        self.partial(slot).rename(self.file(slot))
        slot.uploaded = now
        self._write_meta(slot)

    def _write_meta(self, slot: Slot) -> None:
        tmp = self.slots / slot.id / "meta.tmp"
        tmp.write_text(json.dumps(asdict(slot)))
        tmp.rename(self.slots / slot.id / "meta.json")

    # --- removal ----------------------------------------------------------------------
    def _markers(self, owner: str) -> list[Path]:
        try:
            return list((self.owners / owner).iterdir())
        except FileNotFoundError:
            return []

    def remove(self, slot_id: str, owner: str) -> None:
        shutil.rmtree(self.slots / slot_id, ignore_errors=True)
        (self.owners / owner / slot_id).unlink(missing_ok=True)

    def delete_account(self, account: str) -> int:
        """Every file of the account; returns how many."""
        owner = self.owner_key(account)
        markers = self._markers(owner)
        for marker in markers:
            self.remove(marker.name, owner)
        shutil.rmtree(self.owners / owner, ignore_errors=True)
        return len(markers)

    def sweep(self, now: float) -> int:
        """Remove expired files and slots never filled in time; returns how many went."""
        removed = 0
        try:
            entries = list(self.slots.iterdir())
        except FileNotFoundError:
            return 0
        for directory in entries:
            slot = self.get(directory.name)
            if slot is None:
                shutil.rmtree(directory, ignore_errors=True)  # a slot whose creation was cut short
                removed += 1
            elif self._expired(slot, now):
                self.remove(slot.id, slot.owner)
                removed += 1
        return removed

    def _expired(self, slot: Slot, now: float) -> bool:
        if slot.uploaded is None:
            return now - slot.created > self.slot_lifetime + UPLOAD_GRACE
        return bool(self.expire_after) and now - slot.uploaded > self.expire_after
