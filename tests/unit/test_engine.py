"""SPEC §3 rule by rule, on hand-made facts: classification, items, replies, who replied, the window."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttrd.journal.facts import MessageFacts
from ttrd.replytime.directory import Agent, Directory, Mailbox, Organization
from ttrd.replytime.engine import classify, conversation_items, judge
from ttrd.replytime.hours import Schedule, Span
from ttrd.replytime.items import Item

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
WEEKDAYS_9_TO_5 = Schedule("office", "UTC", ((Span(540, 1020),),) * 5 + ((), ()))
DIRECTORY = Directory(
    Organization(domains=("example.com",), window_days=2, list_addresses=("news@lists.example.org",)),
    agents=(
        Agent("alice", "alice@example.com", aliases=("a@example.com",)),
        Agent("bob", "bob@example.com"),
        Agent("carol", "carol@example.com"),
    ),
    mailboxes=(
        Mailbox(
            "support",
            "support@example.com",
            "shared",
            aliases=("help@example.com",),
            members=("alice", "bob"),
        ),
        Mailbox("sales", "sales@example.com", "distribution", members=("bob", "carol"), schedule="office"),
        Mailbox(
            "users", "users@lists.example.com", "list", members=("alice",), list_id="users.lists.example.com"
        ),
    ),
    schedules={"office": WEEKDAYS_9_TO_5},
)


def mail(
    message_id: str,
    minutes: float,
    author: str,
    *to: str,
    **fields: object,
) -> MessageFacts:
    facts = MessageFacts(
        message_id=message_id,
        ids=frozenset({message_id}),
        synthetic=False,
        event_time=T0 + timedelta(minutes=minutes),
        subject="Question",
        from_address=author,
        from_name="",
        reply_to=(),
        sender=None,
        to_cc=frozenset(to),
        recipients=frozenset(to),
        links=frozenset(),
        thread_key=None,
        list_id=None,
        automatic=(),
    )
    return replace(facts, **fields)  # type: ignore[arg-type]


def items(*messages: MessageFacts) -> list[Item]:
    return conversation_items("c", [classify(m, DIRECTORY) for m in messages], DIRECTORY)


def summary(found: list[Item]) -> list[tuple[str, str, str, bool, str | None, str | None]]:
    return [(i.context, i.inbound_message_id, i.status, i.first, i.agent, i.reply_message_id) for i in found]


def test_inbound_to_a_shared_mailbox_replied_on_behalf() -> None:
    question = mail("q", 0, "jo@cust.net", "support@example.com")
    answer = mail("a", 45, "support@example.com", "jo@cust.net", sender="alice@example.com")
    [item] = items(question, answer)
    assert summary([item]) == [("support", "q", "replied", True, "alice", "a")]
    assert item.calendar_seconds == 2700.0
    assert item.business_seconds == 2700.0  # support has no schedule and there is no default: 24/7
    assert item.customer == "jo@cust.net"


def test_send_as_a_shared_mailbox_is_credited_to_the_sent_folder_owner_or_nobody() -> None:
    question = mail("q", 0, "jo@cust.net", "help@example.com")
    answer = mail("a", 10, "support@example.com", "jo@cust.net")
    assert items(question, answer)[0].agent is None
    answer = replace(answer, sent_by=frozenset({"bob@example.com"}))
    assert items(question, answer)[0].agent == "bob"


def test_one_message_to_two_contexts_opens_two_items_and_one_reply_closes_both() -> None:
    question = mail("q", 0, "jo@cust.net", "support@example.com", "carol@example.com")
    answer = mail("a", 30, "carol@example.com", "jo@cust.net")
    assert summary(items(question, answer)) == [
        ("carol", "q", "replied", True, "carol", "a"),
        ("support", "q", "replied", True, "carol", "a"),
    ]


def test_members_reached_through_a_mailbox_get_no_item_unless_named_in_to_or_cc() -> None:
    expanded = mail("q", 0, "jo@cust.net", "sales@example.com")
    expanded = replace(
        expanded, recipients=frozenset({"sales@example.com", "bob@example.com", "carol@example.com"})
    )
    assert [i.context for i in items(expanded)] == ["sales"]
    named = replace(expanded, to_cc=frozenset({"sales@example.com", "bob@example.com"}))
    assert [i.context for i in items(named)] == ["bob", "sales"]


def test_internal_and_automatic_mail_open_nothing_and_reply_to_nothing() -> None:
    internal = mail("i", 0, "bob@example.com", "support@example.com")
    assert items(internal) == []
    bounce = mail("b", 0, "jo@cust.net", "support@example.com", automatic=("auto-submitted",))
    assert items(bounce) == []
    question = mail("q", 0, "jo@cust.net", "support@example.com")
    auto_answer = mail("a", 5, "alice@example.com", "jo@cust.net", automatic=("auto-subject",))
    assert [i.status for i in items(question, auto_answer)] == ["open"]
    noreply = mail("n", 5, "noreply@example.com", "jo@cust.net")
    assert classify(noreply, DIRECTORY).automatic == "noreply-author"


def test_a_forward_to_a_colleague_is_not_a_reply() -> None:
    question = mail("q", 0, "jo@cust.net", "support@example.com")
    forward = mail("f", 5, "alice@example.com", "bob@example.com")
    answer = mail("a", 60, "bob@example.com", "jo@cust.net")
    [item] = items(question, forward, answer)
    assert (item.reply_message_id, item.agent) == ("a", "bob")


def test_a_reply_that_comes_before_the_question_does_not_close_it() -> None:
    earlier = mail("e", 0, "alice@example.com", "jo@cust.net")
    question = mail("q", 10, "jo@cust.net", "support@example.com")
    assert [i.status for i in items(earlier, question)] == ["open"]


def test_at_equal_times_inbound_comes_before_the_reply() -> None:
    question = mail("z-question", 0, "jo@cust.net", "support@example.com")
    answer = mail("a-answer", 0, "alice@example.com", "jo@cust.net")
    [item] = items(answer, question)
    assert (item.status, item.calendar_seconds) == ("replied", 0.0)


def test_follow_ups_open_only_after_the_item_closes() -> None:
    first = mail("q1", 0, "jo@cust.net", "support@example.com")
    nudge = mail("q2", 20, "jo@cust.net", "support@example.com")
    answer = mail("a1", 60, "alice@example.com", "jo@cust.net")
    again = mail("q3", 90, "jo@cust.net", "support@example.com")
    found = items(first, nudge, answer, again)
    assert summary(found) == [
        ("support", "q1", "replied", True, "alice", "a1"),
        ("support", "q3", "open", False, None, None),
    ]
    assert found[0].calendar_seconds == 3600.0  # the nudge does not move the start


def test_window_a_late_reply_leaves_the_item_unanswered_and_a_late_inbound_opens_a_follow_up() -> None:
    window = 2 * 24 * 60
    question = mail("q", 0, "jo@cust.net", "support@example.com")
    just_in_time = mail("a", window, "alice@example.com", "jo@cust.net")
    assert items(question, just_in_time)[0].status == "replied"
    too_late = mail("a", window + 1, "alice@example.com", "jo@cust.net")
    assert items(question, too_late)[0].status == "unanswered"
    again = mail("q2", window + 1, "jo@cust.net", "support@example.com")
    answer = mail("a2", window + 2, "alice@example.com", "jo@cust.net")
    assert summary(items(question, again, answer)) == [
        ("support", "q", "unanswered", True, None, None),
        ("support", "q2", "replied", False, "alice", "a2"),
    ]


def test_open_items_are_judged_against_the_clock() -> None:
    [item] = items(mail("q", 0, "jo@cust.net", "support@example.com"))
    assert judge(item, T0 + timedelta(days=2), DIRECTORY) == "awaiting"
    assert judge(item, T0 + timedelta(days=2, seconds=1), DIRECTORY) == "unanswered"


def test_business_seconds_follow_the_context_schedule() -> None:
    saturday_ten = mail("q", 5 * 1440 + 60, "jo@cust.net", "sales@example.com")
    monday_ten = mail("a", 7 * 1440 + 60, "bob@example.com", "jo@cust.net")
    [item] = items(saturday_ten, monday_ten)
    assert item.calendar_seconds == 48 * 3600.0
    assert item.business_seconds == 3600.0


def test_mailing_list_rewrite_is_undone_and_an_answer_to_the_list_is_a_reply() -> None:
    question = mail(
        "q", 0, "users@lists.example.com", "users@lists.example.com",
        from_name="Jo via Users", reply_to=("jo@cust.net",), list_id="users.lists.example.com",
        automatic=("list-id", "precedence"), sender="users-bounces@lists.example.com",
    )  # fmt: skip
    answer = mail(
        "a", 30, "users@lists.example.com", "users@lists.example.com",
        from_name="Alice via Users", reply_to=("a@example.com",), list_id="users.lists.example.com",
        automatic=("list-id",), sender="users-bounces@lists.example.com",
    )  # fmt: skip
    classified = classify(question, DIRECTORY)
    assert (classified.author, classified.kind, classified.automatic) == ("jo@cust.net", "inbound", None)
    [item] = items(question, answer)
    assert summary([item]) == [("users", "q", "replied", True, "alice", "a")]
    other_list = replace(question, list_id="other.lists.example.net")
    assert classify(other_list, DIRECTORY).automatic == "precedence"


def test_configured_list_addresses_and_via_names_are_rewrites_only_with_one_reply_to() -> None:
    via = mail("q", 0, "group@googlegroups.com", "support@example.com", from_name="Jo via Group",
               reply_to=("jo@cust.net",))  # fmt: skip
    assert classify(via, DIRECTORY).author == "jo@cust.net"
    listed = replace(via, from_address="news@lists.example.org", from_name="News")
    assert classify(listed, DIRECTORY).author == "jo@cust.net"
    two = replace(via, reply_to=("jo@cust.net", "group@googlegroups.com"))
    assert classify(two, DIRECTORY).author == "group@googlegroups.com"
    plain = replace(via, from_name="Jo")
    assert classify(plain, DIRECTORY).author == "group@googlegroups.com"


def test_first_is_per_context_within_the_conversation() -> None:
    one = mail("q1", 0, "jo@cust.net", "support@example.com")
    answer = mail("a1", 10, "alice@example.com", "jo@cust.net")
    two = mail("q2", 20, "jo@cust.net", "support@example.com", "carol@example.com")
    assert [(i.context, i.first) for i in items(one, answer, two)] == [
        ("support", True),
        ("carol", True),
        ("support", False),
    ]


@st.composite
def conversations(draw: st.DrawFn) -> list[MessageFacts]:
    people = ["jo@cust.net", "max@cust.net", "alice@example.com", "bob@example.com", "support@example.com"]
    targets = [*people, "sales@example.com", "carol@example.com", "users@lists.example.com"]
    return [
        mail(
            f"m{index}",
            draw(st.integers(0, 4 * 1440)),
            draw(st.sampled_from(people)),
            *draw(st.lists(st.sampled_from(targets), min_size=1, max_size=3, unique=True)),
            automatic=draw(st.sampled_from([(), (), (), ("auto-submitted",)])),
        )
        for index in range(draw(st.integers(1, 10)))
    ]


@settings(max_examples=300, deadline=None)
@given(messages=conversations(), data=st.data())
def test_shuffling_arrival_order_never_changes_the_items(
    messages: list[MessageFacts], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(messages))
    assert items(*shuffled) == items(*messages)


@pytest.mark.parametrize("minutes", [0, 30])
def test_replies_close_every_open_item_of_the_conversation(minutes: int) -> None:
    to_support = mail("q1", 0, "jo@cust.net", "support@example.com")
    to_sales = mail("q2", minutes, "max@cust.net", "sales@example.com")
    answer = mail("a", 60, "bob@example.com", "jo@cust.net")
    assert {(i.context, i.status) for i in items(to_support, to_sales, answer)} == {
        ("support", "replied"),
        ("sales", "replied"),
    }
