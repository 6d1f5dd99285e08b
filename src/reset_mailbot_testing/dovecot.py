"""A private Dovecot (IMAP + LMTP) instance on loopback for the integration tests.

Dovecot runs from its own config under a state dir in /tmp (parents must be 0755: the
mail processes run as uid 5000 and Dovecot refuses mail access as root), with passwd-file
users, maildir storage, IMAP and LMTP on free ports and TLS off. Delivery goes through
LMTP exactly like an MTA would hand mail over.
"""

from __future__ import annotations

import grp
import os
import shutil
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from imapclient import IMAPClient

MAIL_UID = 5000
MAIL_GID = 5000
HOST = "127.0.0.1"


class DovecotError(RuntimeError):
    """Dovecot is missing, or did not start or stop."""


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, deadline: float) -> None:
    """Wait until something accepts connections on loopback:`port`."""
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def process_running(pid: int) -> bool:
    """True while `pid` is alive; a zombie counts as stopped (PID 1 here reaps slowly)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


CONFIG_TEMPLATE = """\
# Private Dovecot for the reset-mailbot tests and demo (written by reset_mailbot_testing.dovecot)
instance_name = {instance}
base_dir = {state}/run
state_dir = {state}/state
log_path = {state}/dovecot.log
info_log_path = {state}/dovecot.log
protocols = imap lmtp
listen = {host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth_mechanisms}
auth_failure_delay = 0
postmaster_address = postmaster@forus.test
default_internal_user = dovecot
default_login_user = dovenull
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs
mail_max_userip_connections = 100

{oauth_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {state}/users.d/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {state}/users.d/%u
}}

namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    auto = create
    special_use = \\Sent
  }}
  mailbox Trash {{
    auto = create
    special_use = \\Trash
  }}
  mailbox Junk {{
    auto = create
    special_use = \\Junk
  }}
  mailbox Drafts {{
    auto = create
    special_use = \\Drafts
  }}
}}

service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}

# Wrong-password tests must not slow every later login from 127.0.0.1 by seconds:
# without access to this socket the auth process runs with the auth penalty disabled.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

service lmtp {{
  inet_listener lmtp {{
    address = {host}
    port = {lmtp_port}
  }}
}}
"""


class Dovecot:
    """One private Dovecot instance: start/stop, users, delivery and mailbox inspection."""

    def __init__(self, state_dir: Path, oauth2_introspection_url: str | None = None,
                 oauth2_ca_file: Path | None = None) -> None:
        """`oauth2_introspection_url`: also accept XOAUTH2 and OAUTHBEARER logins, checked by
        the oauth2 passdb against this RFC 7662 introspection endpoint (introspection_mode =
        post), as Dovecot is set up in front of an OAuth provider."""
        self.state_dir = state_dir
        self.oauth2_introspection_url = oauth2_introspection_url
        self.oauth2_ca_file = oauth2_ca_file  # the CA of an https introspection endpoint
        self.host = HOST
        self.imap_port = 0
        self.lmtp_port = 0
        self.config_path = state_dir / "dovecot.conf"
        # One passwd-file per user: Dovecot re-stats a passwd-file at most once per second,
        # so a user added to a shared file right after a login may stay unknown for ~1 s.
        self.users_dir = state_dir / "users.d"
        self.mail_root = state_dir / "mail"
        self.log_path = state_dir / "dovecot.log"
        self.passwords: dict[str, str] = {}
        self.binary = shutil.which("dovecot") or (
            "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
        )
        self.start_seconds = 0.0
        self.stop_seconds = 0.0

    # -- lifecycle ---------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> None:
        """Write the config and start the master; return when IMAP and LMTP accept."""
        if self.binary is None:
            raise DovecotError(
                "dovecot is not installed; run `make test-deps` "
                "(scripts/install-test-deps.sh installs dovecot-imapd dovecot-lmtpd)"
            )
        if os.geteuid() != 0:
            raise DovecotError("the Dovecot harness must run as root (it runs mail as uid 5000)")
        try:
            dovecot_gid = grp.getgrnam("dovecot").gr_gid
        except KeyError as exc:
            raise DovecotError("group `dovecot` missing: is dovecot-core installed?") from exc

        started = time.monotonic()
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        for sub in ("", "run", "state"):
            (self.state_dir / sub).mkdir(mode=0o755, parents=True, exist_ok=True)
            os.chmod(self.state_dir / sub, 0o755)
        self.mail_root.mkdir(mode=0o755)
        os.chown(self.mail_root, MAIL_UID, MAIL_GID)
        self.users_dir.mkdir(mode=0o750)
        os.chown(self.users_dir, 0, dovecot_gid)
        os.chmod(self.users_dir, 0o750)

        self.imap_port, self.lmtp_port = free_port(), free_port()
        while self.lmtp_port == self.imap_port:
            self.lmtp_port = free_port()
        oauth_mechanisms = oauth_passdb = ""
        if self.oauth2_introspection_url:
            ext = self.state_dir / "dovecot-oauth2.conf.ext"
            ext.write_text(
                "introspection_mode = post\n"
                f"introspection_url = {self.oauth2_introspection_url}\n"
                "force_introspection = yes\n"
                "username_attribute = username\n"
                "active_attribute = active\n"
                "active_value = true\n"
                + (f"tls_ca_cert_file = {self.oauth2_ca_file}\n" if self.oauth2_ca_file else "")
            )
            oauth_mechanisms = " xoauth2 oauthbearer"
            oauth_passdb = ("passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                            f"  args = {ext}\n}}\n")
        self.config_path.write_text(
            CONFIG_TEMPLATE.format(
                oauth_mechanisms=oauth_mechanisms,
                oauth_passdb=oauth_passdb,
                instance=f"reset-mailbot-tests-{os.getpid()}",
                state=self.state_dir,
                host=self.host,
                uid=MAIL_UID,
                gid=MAIL_GID,
                imap_port=self.imap_port,
                lmtp_port=self.lmtp_port,
            )
        )
        # The daemonized master inherits the child's stdout/stderr: never use pipes here
        # (waiting for their EOF would hang until Dovecot stops), write to a file instead.
        startup_log = self.state_dir / "startup.log"
        with startup_log.open("wb") as out:
            result = subprocess.run(
                [self.binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False,
            )
        if result.returncode != 0:
            raise DovecotError(
                f"dovecot failed to start ({result.returncode}): "
                f"{startup_log.read_text(errors='replace').strip()}\n{self.log_tail()}"
            )
        deadline = time.monotonic() + timeout
        try:
            wait_for_port(self.imap_port, deadline)
            wait_for_port(self.lmtp_port, deadline)
        except OSError as exc:
            self.stop()
            raise DovecotError(f"dovecot did not listen: {exc}\n{self.log_tail()}") from exc
        self.start_seconds = time.monotonic() - started

    def master_pid(self) -> int | None:
        try:
            return int((self.state_dir / "run" / "master.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the master and wait until it is gone (or a zombie), then SIGKILL."""
        started = time.monotonic()
        pid = self.master_pid()
        if pid is None or not process_running(pid):
            return
        os.kill(pid, 15)
        deadline = time.monotonic() + timeout
        while process_running(pid):
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                break
            time.sleep(0.02)
        self.stop_seconds = time.monotonic() - started

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no dovecot log)"

    # -- users -----------------------------------------------------------------

    def home(self, address: str) -> Path:
        return self.mail_root / address

    def add_user(self, address: str, password: str) -> None:
        """Add a user (its own passwd-file, 0640 root:dovecot: the auth process reads it).

        Usable at once. Changing an existing user's password may take ~1 s to be seen.
        """
        if any(c in address + password for c in ":\n/") or address.startswith("."):
            raise ValueError("address/password must not contain ':', '/' or newlines")
        self.passwords[address] = password
        line = f"{address}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_GID}::{self.home(address)}::\n"
        tmp = self.users_dir / f".{address}.tmp"
        tmp.write_text(line)
        os.chown(tmp, 0, grp.getgrnam("dovecot").gr_gid)
        os.chmod(tmp, 0o640)
        os.replace(tmp, self.users_dir / address)

    def reset_user(self, address: str) -> None:
        """Empty a user's mailbox by removing its home (close its IMAP sessions first)."""
        shutil.rmtree(self.home(address), ignore_errors=True)

    # -- mail ------------------------------------------------------------------

    def client(self, address: str) -> IMAPClient:
        """A logged-in plain-IMAP client for `address` (caller logs out)."""
        imap = IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=30)
        imap.login(address, self.passwords[address])
        return imap

    def deliver(
        self,
        raw: bytes,
        rcpt: str | Iterable[str] = "support@forus.test",
        mail_from: str = "sender@example.test",
    ) -> None:
        """Deliver `raw` over LMTP, like an MTA does; raises on any refused recipient."""
        rcpts = [rcpt] if isinstance(rcpt, str) else list(rcpt)
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=30) as lmtp:
            refused = lmtp.sendmail(mail_from, rcpts, raw)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)

    def append(
        self,
        folder: str,
        raw: bytes,
        user: str = "support@forus.test",
        flags: Iterable[str] = (),
    ) -> int | None:
        """APPEND `raw` to `folder` (created if needed); returns the new UID when known."""
        imap = self.client(user)
        try:
            if not imap.folder_exists(folder):
                imap.create_folder(folder)
            response = imap.append(folder, raw, flags=tuple(flags))
        finally:
            imap.logout()
        # b"[APPENDUID <validity> <uid>] Append completed."
        parts = response.split(b"]")[0].split() if response.startswith(b"[APPENDUID") else []
        return int(parts[2]) if len(parts) == 3 else None

    def list_folder(self, folder: str = "INBOX", user: str = "support@forus.test") -> list[bytes]:
        """All messages in `folder`, raw bytes in UID order (does not set \\Seen)."""
        imap = self.client(user)
        try:
            imap.select_folder(folder, readonly=True)
            uids = sorted(imap.search("ALL"))
            if not uids:
                return []
            fetched = imap.fetch(uids, ["BODY.PEEK[]"])
            return [fetched[uid][b"BODY[]"] for uid in uids]
        finally:
            imap.logout()

    def folders(self, user: str = "support@forus.test") -> list[str]:
        """Folder names of `user`."""
        imap = self.client(user)
        try:
            return [name for _flags, _delim, name in imap.list_folders()]
        finally:
            imap.logout()
