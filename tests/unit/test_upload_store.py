"""The upload store's slot logic without a server: names, limits, quota, expiry, deletion with the account."""

from __future__ import annotations

import pytest

from sakari.modules.upload import download_headers, served_type
from sakari.modules.upload.store import UPLOAD_GRACE, SlotRefused, UploadStore, clean_name

ALICE = "alice@localhost"
DAY = 86400.0


@pytest.fixture
def store(tmp_path) -> UploadStore:
    return UploadStore(tmp_path / "uploads", max_size=1000, quota=2500, slot_lifetime=300, expire_after=30 * DAY)


def fill(store: UploadStore, account: str, size: int, now: float, name: str = "f.bin"):
    slot = store.create(account, name, size, "application/octet-stream", now)
    store.partial(slot).write_bytes(b"x" * size)
    store.complete(slot, now)
    return slot


@pytest.mark.parametrize(
    "given, kept",
    [
        ("photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\doc.pdf", "doc.pdf"),
        ("bad\x00name\n.txt", "bad_name_.txt"),
        ("e\u0301te\u0301.txt", "\u00e9t\u00e9.txt"),
    ],
)
def test_file_names_keep_only_their_last_segment_without_control_characters(given, kept):
    assert clean_name(given) == kept


@pytest.mark.parametrize("given", ["", "..", "dir/", "   "])
def test_a_file_without_a_name_is_refused(given):
    with pytest.raises(SlotRefused) as refused:
        clean_name(given)
    assert refused.value.reason == "bad-name"


def test_long_names_are_cut_to_a_safe_length():
    assert len(clean_name("é" * 300 + ".txt").encode()) <= 200


def test_size_limit_and_quota_count_open_slots_too(store):
    with pytest.raises(SlotRefused) as too_large:
        store.create(ALICE, "big", 1001, "", 0)
    assert too_large.value.reason == "too-large"
    fill(store, ALICE, 1000, 0)
    store.create(ALICE, "reserved", 1000, "", 0)  # not uploaded yet, but reserved
    with pytest.raises(SlotRefused) as over:
        store.create(ALICE, "third", 501, "", 0)
    assert over.value.reason == "quota"
    store.create(ALICE, "fits", 500, "", 0)
    store.create("bob@localhost", "other", 1000, "", 0)  # another account's quota is its own


@pytest.mark.parametrize("size", [0, -5])
def test_sizes_must_be_positive(store, size):
    with pytest.raises(SlotRefused):
        store.create(ALICE, "f", size, "", 0)


def test_a_slot_takes_an_upload_only_while_open(store):
    slot = store.create(ALICE, "f", 10, "", 1000)
    assert store.open_for_upload(slot, 1000 + 300)
    assert not store.open_for_upload(slot, 1000 + 301)
    done = fill(store, ALICE, 10, 1000)
    assert not store.open_for_upload(done, 1000)


def test_sweep_removes_expired_files_and_abandoned_slots_only(store):
    old = fill(store, ALICE, 10, 0)
    recent = fill(store, ALICE, 10, 29 * DAY)
    abandoned = store.create(ALICE, "never", 10, "", 0)
    assert store.sweep(30 * DAY + 1) == 2
    assert store.get(old.id) is None and store.get(abandoned.id) is None
    assert store.get(recent.id) is not None and store.file(recent).exists()
    assert store.used(ALICE) == 10


def test_an_upload_in_progress_is_not_swept_before_the_grace(store):
    slot = store.create(ALICE, "slow", 10, "", 0)
    assert store.sweep(300 + UPLOAD_GRACE) == 0
    assert store.get(slot.id) is not None


def test_files_are_kept_until_account_deletion_when_expiry_is_off(tmp_path):
    store = UploadStore(tmp_path, 1000, 0, 300, 0)
    slot = fill(store, ALICE, 10, 0)
    assert store.sweep(10_000 * DAY) == 0
    assert store.delete_account(ALICE) == 1
    assert store.get(slot.id) is None and store.used(ALICE) == 0


def test_account_deletion_leaves_other_accounts_files(store):
    mine = fill(store, ALICE, 10, 0)
    theirs = fill(store, "bob@localhost", 10, 0)
    assert store.delete_account(ALICE) == 1
    assert store.get(mine.id) is None and store.get(theirs.id) is not None


def test_unknown_or_malformed_slot_ids_find_nothing(store):
    assert store.get("../../etc") is None and store.get("a" * 32) is None


@pytest.mark.parametrize(
    "declared, served",
    [
        ("image/png", "image/png"),
        ("IMAGE/JPEG; x=y", "image/jpeg"),
        ("text/plain", "text/plain; charset=utf-8"),
        ("video/mp4", "video/mp4"),
        ("text/html", None),
        ("image/svg+xml", None),
        ("audio/x+xml", None),
        ("application/pdf", None),
    ],
)
def test_only_media_and_plain_text_are_shown_inline(declared, served):
    assert served_type(declared) == served


def test_download_names_are_quoted_for_the_header(store):
    slot = store.create(ALICE, 'a "quoted" näme.txt', 5, "text/plain", 0)
    disposition = download_headers(slot)["Content-Disposition"]
    assert disposition == "inline; filename=\"a _quoted_ n_me.txt\"; filename*=UTF-8''a%20%22quoted%22%20n%C3%A4me.txt"
