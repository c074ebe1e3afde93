"""Which messages form one conversation (SPEC §3, "Conversation"). Pure.

The links are: shared ids (a message's own ids, and the ids it cites in In-Reply-To and References),
a shared Outlook Thread-Index conversation key, and, for a message with no threading headers at all,
a subject link to the most recent earlier message with the same normalised subject that shares an
external participant with it. A conversation is a connected group of messages in that graph.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain
from typing import TypeVar

Node = TypeVar("Node", str, int)
"""A node of a link graph: a message id, or a copy's place in its batch."""

SUBJECT_WINDOW = timedelta(days=7)

_PREFIX = re.compile(
    r"\s*(?:(?:re|aw|sv|vs|antw|wg|fwd|fw|tr|rv|rif|enc|odp|ynt)(?:\[\d+\]|\(\d+\))?[:：]|\[[^\]]*\])",
    re.IGNORECASE,
)


def normalise_subject(subject: str) -> str:
    """Strip reply/forward prefixes and bracketed tags from the start, fold case, collapse white space."""
    position = 0
    while match := _PREFIX.match(subject, position):
        position = match.end()
    return " ".join(subject[position:].casefold().split())


def tokens(ids: Iterable[str], links: Iterable[str], thread_key: str | None) -> set[str]:
    """What a message shares with others of its conversation: ids (own or cited) and its Thread-Index key."""
    found = {f"id:{value}" for value in ids} | {f"id:{value}" for value in links}
    if thread_key is not None:
        found.add(f"thread:{thread_key}")
    return found


@dataclass(frozen=True, slots=True)
class SubjectNode:
    """What the subject fallback needs to know of a message."""

    message_id: str
    event_time: datetime
    subject_key: str
    threaded: bool
    external_participants: frozenset[str]


def subject_link(message: SubjectNode, candidates: Iterable[SubjectNode]) -> str | None:
    """The message an unthreaded message joins by subject, among `candidates`, or None.

    It is the most recent message strictly earlier than it (at most SUBJECT_WINDOW earlier) with the
    same normalised subject (an empty one too) that shares an external participant; among equally recent
    candidates, the greatest id wins so the choice does not depend on the order of `candidates`.
    """
    if message.threaded:
        return None
    best: SubjectNode | None = None
    for other in candidates:
        if (
            other.subject_key == message.subject_key
            and other.message_id != message.message_id
            and timedelta(0) < message.event_time - other.event_time <= SUBJECT_WINDOW
            and not other.external_participants.isdisjoint(message.external_participants)
            and (best is None or (other.event_time, other.message_id) > (best.event_time, best.message_id))
        ):
            best = other
    return best.message_id if best else None


def components(message_tokens: dict[str, set[str]], subject_links: dict[str, str]) -> list[list[str]]:
    """Connected groups of message ids, linked by shared tokens and by subject links; sorted, stable."""
    edges = chain(
        shared_key_edges(message_tokens),
        ((message_id, target) for message_id, target in subject_links.items() if target in message_tokens),
    )
    return sorted(sorted(group) for group in connected_groups(message_tokens, edges))


def shared_key_edges(keys_of: Mapping[Node, Iterable[Hashable]]) -> Iterator[tuple[Node, Node]]:
    """An edge from each node to the first node that holds one of its keys."""
    holder: dict[Hashable, Node] = {}
    for node, keys in keys_of.items():
        for key in keys:
            yield node, holder.setdefault(key, node)


def connected_groups(nodes: Iterable[Node], edges: Iterable[tuple[Node, Node]]) -> list[list[Node]]:
    """The connected groups of a graph (union-find), each in the order of `nodes`."""
    parent = {node: node for node in nodes}

    def root(node: Node) -> Node:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the smallest node roots its group: a stable choice
    groups: dict[Node, list[Node]] = {}
    for node in parent:
        groups.setdefault(root(node), []).append(node)
    return list(groups.values())


def conversation_id(message_ids: Sequence[str]) -> str:
    """An opaque id that depends only on which messages the conversation holds (its smallest id)."""
    return "c" + hashlib.sha256(min(message_ids).encode()).hexdigest()[:20]
