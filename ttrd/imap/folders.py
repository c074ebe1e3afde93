"""Which server folders an account's `folders` entries mean, and what each tells (SPEC §2, §4). Pure.

An entry is `INBOX`, a folder name (`Archive`, `INBOX/Support`), or `\\Flag`: the folder the server
marks with that SPECIAL-USE flag (RFC 6154), e.g. `\\Sent`. A server without SPECIAL-USE still has a
Sent folder under one of a few dozen common (and localised) names, which `\\Sent` falls back to.

A folder is read as a Sent folder (its owner sent what it holds) when it is the `\\Sent` folder, the
server flags it so, or its name is one of the Sent names; every other folder as holding mail its owner
received: INBOX, the folders server rules file mail into, archives of received mail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ttrd.imap.responses import ListedFolder
from ttrd.journal.facts import Folder

SENT_NAMES = frozenset(
    name.casefold()
    for name in (
        *("Sent", "Sent Items", "Sent Messages", "Sent Mail", "Sent Email"),  # English, Gmail, Apple
        *("Gesendet", "Gesendete Objekte", "Gesendete Elemente", "Gesendete Nachrichten"),  # German
        *("Éléments envoyés", "Envoyés", "Messages envoyés"),  # French
        *("Elementos enviados", "Enviados", "Itens enviados", "Mensagens enviadas"),  # Spanish, Portuguese
        *("Posta inviata", "Inviati", "Elementi inviati"),  # Italian
        *("Verzonden items", "Verzonden", "Verzonden berichten"),  # Dutch
        *("Skickat", "Skickade objekt", "Sendt", "Sendte elementer", "Sendte", "Lähetetyt"),  # Nordic
        *("Wysłane", "Elementy wysłane", "Odeslané", "Odeslaná pošta", "Elküldött elemek"),  # Central Europe
        *("Отправленные", "Надіслані", "Gönderilmiş Öğeler", "Gönderilenler"),  # Russian, Ukrainian, Turkish
        *("送信済みアイテム", "送信済み", "已发送", "已傳送", "보낸 편지함"),  # Japanese, Chinese, Korean
    )
)
"""Where `\\Sent` looks when no folder carries the flag: the last part of a folder's name."""


@dataclass(frozen=True, slots=True)
class ChosenFolder:
    name: str
    """As the server spells it: what SELECT takes, and the key of its sync state."""
    role: Folder
    """`sent`: the owner sent what it holds; `inbox`: the owner received it."""


def choose(entries: Sequence[str], listed: Sequence[ListedFolder]) -> tuple[list[ChosenFolder], list[str]]:
    """The folders `entries` name on this server, each once, and the entries that name none."""
    chosen: dict[str, ChosenFolder] = {}
    missing: list[str] = []
    selectable = [folder for folder in listed if folder.selectable]
    for entry in entries:
        found = _matches(entry, selectable)
        if not found:
            missing.append(entry)
        for folder in found:
            role: Folder = "sent" if _is_sent(entry, folder) else "inbox"
            chosen.setdefault(folder.name, ChosenFolder(folder.name, role))
    return list(chosen.values()), missing


def _matches(entry: str, listed: Sequence[ListedFolder]) -> list[ListedFolder]:
    if entry.upper() == "INBOX":
        return [folder for folder in listed if folder.name.upper() == "INBOX"]
    if entry.startswith("\\"):
        flagged = [folder for folder in listed if entry.lower() in folder.flags]
        if flagged or entry.lower() != "\\sent":
            return flagged
        return [folder for folder in listed if _leaf(folder).casefold() in SENT_NAMES][:1]
    return [folder for folder in listed if entry in (folder.name, folder.display_name)]


def _is_sent(entry: str, folder: ListedFolder) -> bool:
    """The `\\Sent` entry; a folder the server flags `\\Sent`; a folder named by one of SENT_NAMES."""
    return entry.lower() == "\\sent" or "\\sent" in folder.flags or _leaf(folder).casefold() in SENT_NAMES


def _leaf(folder: ListedFolder) -> str:
    name = folder.display_name
    return name.rsplit(folder.delimiter, 1)[-1] if folder.delimiter else name
