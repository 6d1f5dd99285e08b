"""Mailbox adapter against a real Dovecot (tests/harness: `dovecot`, per-test `mailbox` user)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reset_mailbot.adapters.imap import (
    MOVED_KEYWORD,
    Mailbox,
    MailboxAuthError,
    MailboxConnectionError,
    MailboxError,
)
from reset_mailbot_testing import dovecot as dovecot_harness
from reset_mailbot_testing.dovecot import Dovecot, free_port
from tests.harness.mail_fixtures import Mailbox as MailUser
from tests.harness.mail_fixtures import state_root

pytestmark = pytest.mark.services


def _raw(n: int, padding: int = 0) -> bytes:
    return (
        f"From: j.jansen@utrecht.nl\r\nTo: support@forus.test\r\nSubject: Verzoek {n}\r\n"
        f"Message-ID: <msg-{n}@utrecht.nl>\r\n\r\nTekst {n}\r\n{'x' * padding}\r\n"
    ).encode()


@pytest.fixture
def box(mailbox: MailUser) -> Iterator[Mailbox]:
    """Our adapter, connected to this test's fresh Dovecot user, inbox selected."""
    adapter = Mailbox(
        mailbox.host,
        mailbox.imap_port,
        "none",
        mailbox.user,
        mailbox.password,
        batch_size=2,
        timeout=10,
    )
    adapter.connect()
    adapter.ensure_folders()
    adapter.select_inbox()
    try:
        yield adapter
    finally:
        adapter.close()


def _kick(mailbox: MailUser) -> None:
    """Make Dovecot drop the user's IMAP sessions, as a server restart would."""
    subprocess.run(
        ["doveadm", "-c", str(mailbox.server.config_path), "kick", mailbox.user],
        check=True,
        capture_output=True,
    )


def test_folders_are_created_once(box: Mailbox, mailbox: MailUser) -> None:
    assert {"Processed", "Quarantine"} <= set(mailbox.folders())
    box.ensure_folders()  # idempotent
    assert sorted(mailbox.folders()).count("Processed") == 1


def test_uidvalidity_matches_the_server(box: Mailbox, mailbox: MailUser) -> None:
    client = mailbox.client()
    try:
        status = client.folder_status("INBOX", ["UIDVALIDITY"])
    finally:
        client.logout()
    assert box.select_inbox() == status[b"UIDVALIDITY"] == box.uidvalidity


def test_list_sizes_in_batches_and_fetch_without_setting_seen(
    box: Mailbox, mailbox: MailUser
) -> None:
    for n, padding in enumerate([0, 5000, 100, 20_000, 7]):
        mailbox.deliver(_raw(n, padding))
    mailbox.append("INBOX", _raw(99), flags=["\\Seen"])  # read by a person: still listed
    listed = box.list_uids_with_sizes()
    assert len(listed) == 6
    uids = [uid for uid, _ in listed]
    assert uids == sorted(uids)
    fetched = box.fetch(uids)
    assert set(fetched) == set(uids)
    for uid, size in listed:
        assert size == len(fetched[uid])
    assert b"Subject: Verzoek 3" in fetched[uids[3]]
    for uid in uids[:5]:
        assert b"\\Seen" not in box.client.get_flags([uid]).get(uid, ())


def test_fetch_of_a_vanished_uid_is_absent(box: Mailbox, mailbox: MailUser) -> None:
    mailbox.deliver(_raw(1))
    ((uid, _),) = box.list_uids_with_sizes()
    assert box.fetch([uid, uid + 100]).keys() == {uid}


def test_move_keeps_flags_and_other_uids(box: Mailbox, mailbox: MailUser) -> None:
    for n in range(3):
        mailbox.deliver(_raw(n))
    uids = [uid for uid, _ in box.list_uids_with_sizes()]
    box.client.add_flags([uids[1]], [b"$Checked"])
    assert box.has("MOVE")
    box.move(uids[1], box.processed_folder)
    assert [uid for uid, _ in box.list_uids_with_sizes()] == [uids[0], uids[2]]
    (moved,) = mailbox.list_folder("Processed")
    assert b"Subject: Verzoek 1" in moved
    box.move(uids[0], box.quarantine_folder)
    assert len(mailbox.list_folder("Quarantine")) == 1
    client = mailbox.client()
    try:
        client.select_folder("Processed", readonly=True)
        flags = client.get_flags(client.search("ALL"))
    finally:
        client.logout()
    assert [b"$Checked" in f for f in flags.values()] == [True]


def test_without_move_uses_uid_expunge_and_spares_others_deleted_mail(
    box: Mailbox, mailbox: MailUser
) -> None:
    for n in range(3):
        mailbox.deliver(_raw(n))
    uids = [uid for uid, _ in box.list_uids_with_sizes()]
    box.client.add_flags([uids[2]], [b"\\Deleted"])  # someone else's pending deletion
    box.capabilities -= {"MOVE"}
    assert box.has("UIDPLUS")
    box.move(uids[0], "Processed")
    assert [uid for uid, _ in box.list_uids_with_sizes()] == uids[1:]
    assert len(mailbox.list_folder("Processed")) == 1


def test_without_move_or_uidplus_nothing_is_deleted(box: Mailbox, mailbox: MailUser) -> None:
    for n in range(2):
        mailbox.deliver(_raw(n))
    uids = [uid for uid, _ in box.list_uids_with_sizes()]
    box.capabilities -= {"MOVE", "UIDPLUS"}
    box.move(uids[0], "Processed")
    assert [uid for uid, _ in box.list_uids_with_sizes()] == [uids[1]]  # hidden, not deleted
    assert len(mailbox.list_folder("INBOX")) == 2
    flags = box.client.get_flags([uids[0]]).get(uids[0], ())
    assert MOVED_KEYWORD.encode() in flags
    assert b"\\Deleted" not in flags
    assert len(mailbox.list_folder("Processed")) == 1


@pytest.mark.parametrize("without", [set(), {"MOVE"}, {"MOVE", "UIDPLUS"}])
def test_move_many_moves_exactly_the_given_uids_in_batches(
    box: Mailbox, mailbox: MailUser, without: set[str]
) -> None:
    """batch_size is 2 here: five UIDs take three commands; a vanished UID is no error."""
    for n in range(7):
        mailbox.deliver(_raw(n))
    uids = [uid for uid, _ in box.list_uids_with_sizes()]
    box.client.add_flags([uids[6]], [b"\\Deleted"])  # someone else's pending deletion
    box.capabilities -= without
    chosen = [uids[4], uids[0], uids[2], uids[3], uids[3], uids[5] + 100]
    box.move_many(chosen, "Processed")
    assert [uid for uid, _ in box.list_uids_with_sizes()] == [uids[1], uids[5], uids[6]]
    moved = sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in
                   mailbox.list_folder("Processed"))
    assert moved == [b"Verzoek 0", b"Verzoek 2", b"Verzoek 3", b"Verzoek 4"]
    # nothing is ever deleted: without UIDPLUS the originals stay, hidden by the keyword
    assert len(mailbox.list_folder("INBOX")) == (7 if without == {"MOVE", "UIDPLUS"} else 3)


def _deliver_later(mailbox: MailUser, delay: float) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        mailbox.deliver(_raw(42))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_idle_returns_when_mail_arrives(box: Mailbox, mailbox: MailUser) -> None:
    assert box.has("IDLE")
    thread = _deliver_later(mailbox, 0.3)
    started = time.monotonic()
    try:
        assert box.wait_for_change(10) is True
    finally:
        thread.join()
    assert time.monotonic() - started < 3  # Dovecot batches for ~0.5 s
    assert len(box.list_uids_with_sizes()) == 1  # the connection is usable after IDLE


def test_idle_times_out_and_stops_on_request(box: Mailbox) -> None:
    started = time.monotonic()
    assert box.wait_for_change(1.2) is False
    assert 1.1 < time.monotonic() - started < 3
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert box.wait_for_change(30, stop) is False
    assert time.monotonic() - started < 2.5
    box.list_uids_with_sizes()  # still usable


def test_without_idle_sleeps_then_asks(box: Mailbox, mailbox: MailUser) -> None:
    box.capabilities -= {"IDLE"}
    mailbox.deliver(_raw(1))
    assert box.wait_for_change(0.3) is True
    assert box.wait_for_change(0.3) is False


def test_wrong_password_is_an_auth_error(mailbox: MailUser) -> None:
    adapter = Mailbox(mailbox.host, mailbox.imap_port, "none", mailbox.user, "wrong")
    with pytest.raises(MailboxAuthError):
        adapter.connect()
    assert not adapter.connected


def test_starttls_not_offered_is_refused(mailbox: MailUser) -> None:
    adapter = Mailbox(mailbox.host, mailbox.imap_port, "starttls", mailbox.user, mailbox.password)
    with pytest.raises(MailboxAuthError, match="STARTTLS"):
        adapter.connect()
    assert not adapter.connected


def test_ssl_against_a_plain_port_is_a_connection_error(mailbox: MailUser) -> None:
    adapter = Mailbox(mailbox.host, mailbox.imap_port, "ssl", mailbox.user, mailbox.password)
    with pytest.raises(MailboxConnectionError):
        adapter.connect()


def test_server_down_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = Mailbox("127.0.0.1", port, "none", "u", "p", timeout=2)
    with pytest.raises(MailboxConnectionError):
        adapter.connect()
    with pytest.raises(MailboxConnectionError):
        adapter.list_uids_with_sizes()  # not connected


def test_dropped_connection_then_reconnect(box: Mailbox, mailbox: MailUser) -> None:
    mailbox.deliver(_raw(1))
    validity = box.uidvalidity
    _kick(mailbox)
    with pytest.raises(MailboxConnectionError):
        for _ in range(3):  # the first command may still get through before the BYE
            box.list_uids_with_sizes()
            time.sleep(0.2)
    assert not box.connected
    box.connect()
    box.ensure_folders()
    assert box.select_inbox() == validity
    assert len(box.list_uids_with_sizes()) == 1


def test_dropped_connection_during_idle(box: Mailbox, mailbox: MailUser) -> None:
    timer = threading.Timer(0.3, _kick, args=(mailbox,))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(MailboxConnectionError):
            box.wait_for_change(20)
    finally:
        timer.join()
    assert time.monotonic() - started < 10
    assert not box.connected


def test_no_answer_errors_are_mailbox_errors(box: Mailbox, mailbox: MailUser) -> None:
    mailbox.deliver(_raw(1))
    ((uid, _),) = box.list_uids_with_sizes()
    with pytest.raises(MailboxError) as caught:
        box.move(uid, "No/Such/Folder")
    assert not isinstance(caught.value, MailboxConnectionError | MailboxAuthError)
    assert box.connected


# -- TLS: a second private Dovecot with a self-signed certificate (the shared one runs ssl = no)


@pytest.fixture(scope="module")
def tls_dovecot() -> Iterator[tuple[Dovecot, int, Path]]:
    """A Dovecot offering STARTTLS on its IMAP port and implicit TLS on an IMAPS port."""
    root = state_root() / "imap-tls"
    certs = root / "certs"
    certs.mkdir(parents=True, mode=0o755, exist_ok=True)
    cert, key = certs / "cert.pem", certs / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    imaps_port = free_port()
    plain = dovecot_harness.CONFIG_TEMPLATE
    template = plain.replace("ssl = no", f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}")
    template = template.replace(
        "  inet_listener imaps {{\n    port = 0\n  }}",
        f"  inet_listener imaps {{{{\n    address = {{host}}\n    port = {imaps_port}\n  }}}}",
    )
    assert template.count(str(cert)) == 1 and str(imaps_port) in template, "harness changed"
    server = Dovecot(root / "dovecot")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dovecot_harness, "CONFIG_TEMPLATE", template)
        server.start()
    try:
        server.add_user("support@forus.test", "secret")
        yield server, imaps_port, cert
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_connections(tls_dovecot: tuple[Dovecot, int, Path], security: str) -> None:
    server, imaps_port, cert = tls_dovecot
    port = imaps_port if security == "ssl" else server.imap_port
    context = ssl.create_default_context(cafile=str(cert))
    adapter = Mailbox(
        "127.0.0.1",
        port,
        security,
        "support@forus.test",
        "secret",
        ssl_context=context,  # type: ignore[arg-type]
    )
    with adapter:
        assert isinstance(adapter.client.socket(), ssl.SSLSocket)
        adapter.ensure_folders()
        adapter.select_inbox()
        assert adapter.list_uids_with_sizes() == []


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_untrusted_certificate_is_refused(
    tls_dovecot: tuple[Dovecot, int, Path], security: str
) -> None:
    server, imaps_port, _ = tls_dovecot
    port = imaps_port if security == "ssl" else server.imap_port
    adapter = Mailbox("127.0.0.1", port, security, "support@forus.test", "secret")  # type: ignore[arg-type]
    with pytest.raises(MailboxAuthError, match="certificate"):
        adapter.connect()
    assert not adapter.connected


def test_fetch_batches_are_bounded_by_bytes(box: Mailbox, mailbox: MailUser) -> None:
    for n, padding in enumerate([10, 30_000, 10, 10, 30_000]):
        mailbox.deliver(_raw(n, padding))
    listed = box.list_uids_with_sizes()
    calls: list[list[int]] = []
    fetch = box.fetch

    def spy(uids: list[int]) -> dict[int, bytes]:
        calls.append(list(uids))
        return fetch(uids)

    box.fetch = spy  # type: ignore[method-assign]
    batches = list(box.fetch_batches(listed, max_batch_bytes=20_000))
    got = [item for batch in batches for item in batch]
    assert [uid for uid, _ in got] == [uid for uid, _ in listed]
    assert [len(raw) for _, raw in got] == [size for _, size in listed]
    u = [uid for uid, _ in listed]
    # small ones share a batch (up to batch_size=2), a large one goes alone
    assert calls == [[u[0]], [u[1]], [u[2], u[3]], [u[4]]]
    assert [[uid for uid, _ in batch] for batch in batches] == calls


def test_a_move_colliding_with_another_session_is_not_a_failure(
    box: Mailbox, mailbox: MailUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #15: another session moved one of the set after this one last synchronised.
    Dovecot refuses the whole UID MOVE (NO [EXPUNGEISSUED]); the adapter moves what is left."""
    for n in range(3):
        mailbox.deliver(_raw(n))
    uids = [uid for uid, _ in box.list_uids_with_sizes()]
    other = Mailbox(mailbox.host, mailbox.imap_port, "none", mailbox.user, mailbox.password,
                    timeout=10)
    other.connect()
    try:
        other.select_inbox()
        other.move(uids[0], "Processed")
    finally:
        other.close()
    rechecks: list[list[int]] = []
    real = box._still_in_inbox
    monkeypatch.setattr(box, "_still_in_inbox",
                        lambda batch: rechecks.append(batch) or real(batch))
    box.move_many(uids[:2], "Processed")  # no exception: a collision, not a connection failure
    assert rechecks == [uids[:2]]  # Dovecot did refuse the first MOVE
    assert [uid for uid, _ in box.list_uids_with_sizes()] == [uids[2]]
    moved = sorted(m.split(b"Subject: ")[1].split(b"\r\n")[0] for m in
                   mailbox.list_folder("Processed"))
    assert moved == [b"Verzoek 0", b"Verzoek 1"]  # each once
