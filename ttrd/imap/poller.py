"""The IMAP poller (SPEC §4): one task per account, feeding the same spool as the SMTP sink.

A session: connect and log in, find the configured folders, then again and again read every folder
from its last seen UID to its end, and wait — in IDLE on the first folder where the server offers it
(re-issued at least every `poll_seconds`, at most every 9 minutes, since NATs drop idle sessions long
before RFC 2177's 29), sleeping otherwise. Reading a folder fetches only `BODY.PEEK[HEADER]`,
`INTERNALDATE` and `RFC822.SIZE` of new UIDs, in EXAMINE (read-only) mode, so no flag ever changes;
only a message without a Message-ID also gets the start of its text, which SPEC §2's synthetic id
hashes. Copies go through the durable spool together with the folder's new last seen UID, so a
crash fetches again rather than loses. A UIDVALIDITY change reads the folder again from its start:
copies already seen are duplicates, so nothing counts twice.

Whatever fails ends the session: the poller logs what kind of failure it was (never a secret),
counts it, marks the account down and tries again after an exponential backoff with jitter (or the
pause a throttling server asked for). One account failing never stops another, nor the SMTP sink.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ttrd.config import ImapAccount
from ttrd.errors import StorageError
from ttrd.imap.connection import Credentials, ImapConnection, ImapFailure
from ttrd.imap.folders import ChosenFolder, choose
from ttrd.imap.responses import Fetched
from ttrd.ingest.spooler import Spooler
from ttrd.journal.facts import Delivery
from ttrd.journal.headers import decode_bytes, message_ids
from ttrd.journal.parse import KEPT_BODY_BYTES, reduce_message
from ttrd.storage.spool import FolderState, SpoolEntry

log = logging.getLogger(__name__)

FETCH_CHUNK = 50
"""UIDs per FETCH, and per spool commit. aioimaplib reads a FETCH answer in time quadratic in its
lines (it rescans them at each), so a short FETCH is faster per message (bench/imap_sync.py)."""
IDLE_MAX_SECONDS = 540.0
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0
MESSAGES = "imap_messages"
"""Counter of copies fetched, by account (`ttrd_imap_messages_total`)."""
POLLS = "imap_polls"
"""Counter of polls, by `account/result` (`ttrd_imap_polls_total`)."""


@dataclass
class AccountStatus:
    """What the metrics show of an account: `ttrd_imap_up` and the last poll that read every folder."""

    up: bool = False
    last_success: datetime | None = None


@dataclass
class _Backoff:
    delay: float = BACKOFF_FIRST_SECONDS
    rng: random.Random = field(default_factory=random.Random)

    def next(self, asked: float | None) -> float:
        """The pause before the next attempt: full jitter up to the current delay, which then doubles."""
        pause = self.rng.uniform(0, self.delay)
        self.delay = min(self.delay * 2, BACKOFF_MAX_SECONDS)
        return max(pause, asked or 0.0)

    def reset(self) -> None:
        self.delay = BACKOFF_FIRST_SECONDS


class AccountPoller:
    def __init__(
        self,
        account: ImapAccount,
        owner_address: str,
        spooler: Spooler,
        folders: Mapping[str, FolderState],
        clock: Callable[[], datetime],
    ) -> None:
        self.account = account
        self.owner_address = owner_address
        self.spooler = spooler
        self.clock = clock
        self.status = AccountStatus(last_success=max((s.synced_at for s in folders.values()), default=None))
        self._states = dict(folders)
        self._backoff = _Backoff()
        self._folder: str | None = None
        """The folder being read or watched, for the logs."""

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            try:
                await self._session()
            except ImapFailure as failure:
                self._failed(failure.kind, failure.problem)
                await asyncio.sleep(self._backoff.next(failure.retry_after))
            except StorageError as error:
                self._failed("storage", str(error))
                await asyncio.sleep(self._backoff.next(None))
            except Exception as error:  # a bug: logged whole, and the account tries again
                log.exception("imap %s: the poller failed", self.account.id)
                self._failed("error", f"{type(error).__name__}: {error}")
                await asyncio.sleep(self._backoff.next(None))

    def _failed(self, kind: str, problem: str) -> None:
        self.status.up = False
        self.spooler.count(POLLS, f"{self.account.id}/{kind}")
        where = f" in {self._folder}" if self._folder else ""
        log.warning("imap %s: %s failure%s: %s; trying again later", self.account.id, kind, where, problem)

    async def _session(self) -> None:
        self._folder = None
        credentials = Credentials.read(self.account)
        connection = await ImapConnection.open(self.account, credentials, self.account.timeout_seconds)
        try:
            folders = await self._folders(connection)
            self.status.up = True  # a working session, a first backfill included
            while True:
                await self._poll(connection, folders)
                await self._wait(connection, folders)
        finally:
            await connection.logout()

    async def _folders(self, connection: ImapConnection) -> list[ChosenFolder]:
        chosen, missing = choose(self.account.folders, await connection.list_folders())
        for entry in missing:
            log.warning("imap %s: no folder %r on the server; it is left out", self.account.id, entry)
        if not chosen:
            raise ImapFailure("protocol", f"none of the folders {list(self.account.folders)} exists")
        return chosen

    async def _poll(self, connection: ImapConnection, folders: list[ChosenFolder]) -> None:
        for folder in folders:
            await self._sync(connection, folder)
        self.status.last_success = self.clock()
        self.spooler.count(POLLS, f"{self.account.id}/ok")
        self._backoff.reset()

    async def _sync(self, connection: ImapConnection, folder: ChosenFolder) -> None:
        """Read one folder from its last seen UID to its end."""
        self._folder = folder.name
        selected = await connection.examine(folder.name)
        state = self._states.get(folder.name)
        if state is not None and state.uidvalidity != selected.uidvalidity:
            log.warning(
                "imap %s: %s has a new UIDVALIDITY (%d, was %d): reading it again from its start",
                self.account.id, folder.name, selected.uidvalidity, state.uidvalidity,
            )  # fmt: skip
            state = None
        last = 0 if state is None else state.last_uid
        if not self._changed(folder, selected.uidvalidity, selected.uidnext):
            return  # nothing new: no search needed
        uids = await connection.uids_after(last)
        if not uids and state is None:
            await self._record(folder, selected.uidvalidity, last, [])
        for start in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[start : start + FETCH_CHUNK]
            entries = await self._fetch(connection, folder, chunk)
            await self._record(folder, selected.uidvalidity, chunk[-1], entries)

    async def _fetch(
        self, connection: ImapConnection, folder: ChosenFolder, uids: list[int]
    ) -> list[SpoolEntry]:
        fetched = {item.uid: item for item in await connection.fetch_headers(uids) if item.header is not None}
        anonymous = [uid for uid, item in fetched.items() if not _has_message_id(item)]
        texts = {
            item.uid: item.text_start
            for item in await connection.fetch_text_start(anonymous, KEPT_BODY_BYTES)
        }
        received = self.clock()
        return [
            SpoolEntry(self._delivery(folder, item, received), _copy(item, texts.get(uid)))
            for uid, item in sorted(fetched.items())
        ]

    def _delivery(self, folder: ChosenFolder, item: Fetched, received: datetime) -> Delivery:
        return Delivery(
            "imap",
            received,
            internal_date=item.internal_date,
            owner=self.owner_address,
            folder=folder.role,
            origin=f"imap {self.account.id} {folder.name} uid {item.uid}",
        )

    async def _record(
        self, folder: ChosenFolder, uidvalidity: int, last_uid: int, entries: list[SpoolEntry]
    ) -> None:
        state = FolderState(self.account.id, folder.name, uidvalidity, last_uid, self.clock())
        await self.spooler.put_many(entries, [state], {(MESSAGES, self.account.id): len(entries)})
        self._states[folder.name] = state

    async def _wait(self, connection: ImapConnection, folders: list[ChosenFolder]) -> None:
        seconds = min(self.account.poll_seconds, IDLE_MAX_SECONDS)
        if "IDLE" not in connection.capabilities:
            await asyncio.sleep(seconds)
            return
        watched = folders[0]
        self._folder = watched.name
        selected = await connection.examine(watched.name)
        if self._changed(watched, selected.uidvalidity, selected.uidnext):
            return  # mail came while the other folders were read: read again at once
        await connection.idle(seconds)

    def _changed(self, folder: ChosenFolder, uidvalidity: int, uidnext: int | None) -> bool:
        state = self._states.get(folder.name)
        if state is None or state.uidvalidity != uidvalidity:
            return True
        return uidnext is None or uidnext > state.last_uid + 1


_MESSAGE_ID = re.compile(
    rb"^message-id[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.IGNORECASE | re.MULTILINE
)


def _has_message_id(item: Fetched) -> bool:
    """Whether the header block has a Message-ID the parser will take (not a whole parse: the event
    loop runs this for every message fetched; the worker parses them)."""
    match = _MESSAGE_ID.search(item.header or b"")
    return match is not None and bool(message_ids(decode_bytes(match[1]).replace("\r\n", "").strip()))


def _copy(item: Fetched, text: bytes | None) -> bytes:
    """The header block (with the start of the text, if fetched), as ttrd keeps it."""
    return reduce_message((item.header or b"") + (text or b""))
