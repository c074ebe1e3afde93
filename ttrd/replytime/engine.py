"""The rules of SPEC §3: inbound mail, replies, items, who replied, unanswered. Pure and deterministic.

`classify` applies the configuration to one message's facts. `conversation_items` replays one
conversation's messages in event-time order and returns its items; because the replay always sorts,
the items do not depend on the order in which messages arrived. Items whose reply has not come are
returned `open` and judged against a clock only when read (`judge`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ttrd.journal.automatic import LIST_REASONS, author_reason, first_reason
from ttrd.journal.facts import MessageFacts
from ttrd.replytime.directory import Context, Directory
from ttrd.replytime.items import Item, Status

Kind = Literal["inbound", "reply", "other"]

_VIA_LIST = re.compile(r"\svia\s+\S.*$", re.IGNORECASE)
"""Display name of a Google Groups / Mailman DMARC rewrite: "Alice via Support"."""


@dataclass(frozen=True, slots=True)
class Classified:
    """A message as the configuration sees it."""

    facts: MessageFacts
    author: str | None
    transmitter: str | None
    automatic: str | None
    kind: Kind
    contexts: tuple[Context, ...]
    """For inbound mail: the contexts it opens items in."""
    external_participants: frozenset[str]

    @property
    def order(self) -> tuple[datetime, int, str]:
        """Replay order: event time; at equal times inbound before replies; then by id."""
        return (self.facts.event_time, 0 if self.kind == "inbound" else 1, self.facts.message_id)


def author_of(facts: MessageFacts, directory: Directory) -> str | None:
    """The first From: address, or the Reply-To address where From: is a mailing-list rewrite."""
    address = facts.from_address
    if address is None or len(facts.reply_to) != 1:
        return address
    if directory.is_list_address(address) or _VIA_LIST.search(facts.from_name):
        return facts.reply_to[0]
    return address


def automatic_reason(facts: MessageFacts, author: str | None, directory: Directory) -> str | None:
    reasons = set(facts.automatic)
    if directory.is_tracked_list_id(facts.list_id):
        reasons -= LIST_REASONS
    noreply = author_reason(author)
    if noreply:
        reasons.add(noreply)
    return first_reason(reasons)


def classify(facts: MessageFacts, directory: Directory) -> Classified:
    author = author_of(facts, directory)
    transmitter = facts.sender if facts.sender and facts.sender != facts.from_address else None
    automatic = automatic_reason(facts, author, directory)
    participants = set(facts.recipients)
    participants.update(address for address in (author, transmitter) if address)
    external = frozenset(address for address in participants if not directory.is_internal(address))
    kind: Kind = "other"
    contexts: tuple[Context, ...] = ()
    if automatic is None and author is not None:
        if not directory.is_internal(author):
            contexts = tuple(directory.contexts_of(facts.recipients, facts.to_cc))
            kind = "inbound" if contexts else "other"
        elif _reaches_outside(facts.recipients, directory):
            kind = "reply"
    return Classified(facts, author, transmitter, automatic, kind, contexts, external)


def _reaches_outside(recipients: Iterable[str], directory: Directory) -> bool:
    """A reply goes to someone external, or to a list mailbox (whose subscribers are external)."""
    return any(
        not directory.is_internal(address) or _is_list_mailbox(address, directory) for address in recipients
    )


def _is_list_mailbox(address: str, directory: Directory) -> bool:
    context = directory.resolve(address)
    return context is not None and context.mailbox is not None and context.mailbox.kind == "list"


def replying_agent(reply: Classified, directory: Directory) -> str | None:
    """Who replied: the transmitter, else the author; for send-as from a mailbox, the Sent folder owner."""
    for address in (reply.transmitter, reply.author):
        agent = directory.agent_for(address)
        if agent is not None:
            return agent.id
    author_context = directory.resolve(reply.author) if reply.author else None
    if reply.transmitter is None and author_context is not None and author_context.mailbox is not None:
        owners = sorted(a.id for a in map(directory.agent_for, reply.facts.sent_by) if a is not None)
        return owners[0] if owners else None
    return None


@dataclass(slots=True)
class _Open:
    context: Context
    inbound: Classified
    first: bool


def conversation_items(conversation: str, messages: Iterable[Classified], directory: Directory) -> list[Item]:
    """Replay a conversation in event-time order and return its items, open ones included."""
    window = timedelta(seconds=directory.organization.window_seconds)
    open_items: dict[str, _Open] = {}
    seen_contexts: set[str] = set()
    items: list[Item] = []

    def close_expired(now: datetime) -> None:
        for context_id, item in list(open_items.items()):
            if now - item.inbound.facts.event_time > window:
                items.append(_item(conversation, item, "unanswered"))
                del open_items[context_id]

    for message in sorted(messages, key=lambda m: m.order):
        if message.kind == "other":
            continue
        close_expired(message.facts.event_time)
        if message.kind == "inbound":
            for context in message.contexts:
                if context.id not in open_items:
                    open_items[context.id] = _Open(context, message, context.id not in seen_contexts)
                    seen_contexts.add(context.id)
        else:
            agent = replying_agent(message, directory)
            items.extend(_replied(conversation, item, message, agent) for item in open_items.values())
            open_items.clear()
    items.extend(_item(conversation, item, "open") for item in open_items.values())
    return sorted(items, key=lambda i: (i.opened_at, i.context, i.inbound_message_id))


def _item(conversation: str, item: _Open, status: Literal["open", "unanswered"]) -> Item:
    inbound = item.inbound
    return Item(
        conversation=conversation,
        context=item.context.id,
        inbound_message_id=inbound.facts.message_id,
        customer=inbound.author,
        opened_at=inbound.facts.event_time,
        first=item.first,
        status=status,
    )


def _replied(conversation: str, item: _Open, reply: Classified, agent: str | None) -> Item:
    start = item.inbound.facts.event_time
    end = reply.facts.event_time
    return Item(
        conversation=conversation,
        context=item.context.id,
        inbound_message_id=item.inbound.facts.message_id,
        customer=item.inbound.author,
        opened_at=start,
        first=item.first,
        status="replied",
        agent=agent,
        reply_message_id=reply.facts.message_id,
        replied_at=end,
        calendar_seconds=(end - start).total_seconds(),
        business_seconds=item.context.schedule.business_seconds(start, end),
    )


def judge(item: Item, now: datetime, directory: Directory) -> Status:
    """The status a reader sees: an open item is unanswered once the window has passed on the clock."""
    if item.status != "open":
        return item.status
    window = timedelta(seconds=directory.organization.window_seconds)
    return "unanswered" if now - item.opened_at > window else "awaiting"
