"""MessageFacts to and from the JSON document stored per message."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ttrd.journal.facts import MessageFacts

_SETS = ("ids", "to_cc", "recipients", "links", "sent_by")


def dump_facts(facts: MessageFacts) -> str:
    document: dict[str, Any] = {
        "message_id": facts.message_id,
        "synthetic": facts.synthetic,
        "event_time": facts.event_time.timestamp(),
        "subject": facts.subject,
        "from_address": facts.from_address,
        "from_name": facts.from_name,
        "reply_to": list(facts.reply_to),
        "sender": facts.sender,
        "thread_key": facts.thread_key,
        "list_id": facts.list_id,
        "automatic": list(facts.automatic),
        "threaded": facts.threaded,
        "copy_key": facts.copy_key,
    }
    for name in _SETS:
        document[name] = sorted(getattr(facts, name))
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def load_facts(text: str) -> MessageFacts:
    document = json.loads(text)
    for name in _SETS:
        document[name] = frozenset(document[name])
    document["event_time"] = datetime.fromtimestamp(document["event_time"], UTC)
    document["reply_to"] = tuple(document["reply_to"])
    document["automatic"] = tuple(document["automatic"])
    return MessageFacts(**document)
