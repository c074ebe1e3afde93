"""Why a message is automatic mail (SPEC §2): bounces, reports, auto-replies, bulk and list mail.

Only the header block is read, and nothing here depends on the configuration: the reasons are stored
with the message facts, and the engine later drops `LIST_REASONS` for mail of a tracked list and adds
`author_reason` of the author it decides on (a mailing-list `From:` rewrite is undone with config).

Every rule is a marker that human mail does not carry; a rule that also fires on ordinary mail from
some client (Outlook's `X-Auto-Response-Suppress`, `X-Mailer`, `X-Loop`, `Feedback-ID`…) is left out,
since a false positive hides a customer's question as surely as a miss counts a bounce as one.
The corpus behind the rules: `corpus/automatic` (629 bounces, ARF complaints and auto-replies of
~80 mail systems, from the Sisimai project) must all be recognised, while the scenarios' human mail
and the usrp-users mailing list must not be (tests/unit/test_automatic.py).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Iterator
from operator import itemgetter

from ttrd.journal.headers import Headers, decode_words

REASONS: tuple[str, ...] = (
    "null-sender",  # null reverse path: SMTP `MAIL FROM:<>` (found by the caller) or `Return-Path: <>`
    "feedback-report",  # a complaint: ARF (`report-type=feedback-report`), Hotmail's "complaint about…"
    "multipart-report",  # `Content-Type: multipart/report`: a DSN, MDN or ARF report (RFC 6522)
    "x-failed-recipients",  # Exim's bounce header
    "bounce-header",  # another MTA's bounce-only header (Exchange, Mail.Ru, MXLogic, IndiMail)
    "daemon-from",  # `From:` with a null address (`<>`) or a bare `MAILER-DAEMON` with no domain
    "bounce-subject",  # a bounce or delay-warning subject of a common MTA, localised Exchange NDRs
    "x-autoreply",  # an autoresponder's own marker header (X-Autoreply, X-Autorespond, …)
    "auto-subject",  # subject starts with `Automatic reply:`, `Out of Office`, `Undeliverable:`…
    "exchange-generated",  # `X-MS-Exchange-Generated-Message-Source`: made by an Exchange agent
    "auto-submitted",  # `Auto-Submitted` other than `no` (RFC 3834)
    "notification-header",  # a machine notification service's header (Amazon SNS, cron)
    "noreply-author",  # the author's local part is noreply, mailer-daemon, postmaster… (`author_reason`)
    "list-manager",  # a list manager's own header without List-Id (fml, ezmlm)
    "precedence",  # `Precedence: bulk|junk|list`
    "list-id",  # `List-Id` (RFC 2919)
    "list-unsubscribe",  # `List-Unsubscribe` (RFC 2369)
)
"""Every reason code, most specific first; `first_reason` picks the one a message is counted under."""

LIST_REASONS: frozenset[str] = frozenset({"precedence", "list-id", "list-unsubscribe", "list-manager"})
"""Reasons that do not count on mail whose `List-Id` is a tracked mailbox's `list_id` (SPEC §2): a
tracked list re-sends human mail with these headers, which must still open items and count as replies."""

_RANK = {reason: rank for rank, reason in enumerate(REASONS)}

# Header presence alone is enough for these: each is written only on automatic mail.
_PRESENCE: dict[str, str] = {
    "x-failed-recipients": "x-failed-recipients",  # Exim, Gmail, Google Groups, Mail.Ru
    "x-ms-exchange-message-is-ndr": "bounce-header",  # Exchange 2007+ and Microsoft 365 NDRs
    "x-dsncontext": "bounce-header",  # Exchange 2000/2003 and IIS SMTP DSNs (old Hotmail/Outlook.com)
    "x-mailer-daemon-recipients": "bounce-header",  # Mail.Ru bounces
    "x-mx-bounce": "bounce-header",  # MXLogic (McAfee SaaS) bounces
    "x-bounced-address": "bounce-header",  # IndiMail (qmail fork) bounces
    "x-autoreply": "x-autoreply",  # SPEC; Gmail's vacation responder ("yes")
    "x-autorespond": "x-autoreply",  # SPEC; cPanel, BoxTrapper
    "x-autoresponder": "x-autoreply",  # SPEC
    "x-autoreply-from": "x-autoreply",  # Domain Technologie Control
    "x-mail-autoreply": "x-autoreply",  # Domain Technologie Control
    "x-ms-exchange-generated-message-source": "exchange-generated",  # SPEC: Exchange agents' own mail
    "x-amz-sns-message-id": "notification-header",  # Amazon SNS e-mail notifications (SES bounces…)
    "x-cron-env": "notification-header",  # cron's mail of a job's output (Vixie cron, cronie)
    "list-id": "list-id",
    "list-unsubscribe": "list-unsubscribe",
    # fml (Japanese list manager) and ezmlm mark their own posts and notices ("you are not a member",
    # "Loop Alert") with these and may carry no List-Id; Mailman and Google Groups add List-Id too.
    "x-mlserver": "list-manager",
    "mailing-list": "list-manager",
}

# Header values that mark an autoresponder (RFC 3834 predates most of them; the survey of
# autoresponder headers in the multi_mail wiki and arp242.net names their senders): BoxTrapper and
# cPanel (`X-Precedence: auto_reply`; `Precedence: auto_reply` is handled with Precedence), Apple
# iCloud's vacation action, CommuniGate Pro (`X-Autogenerated: Reply`; its Forward, Redirect and Mirror
# copies are someone else's mail and do not count), Mailtraq (`X-POST-MessageClass: 9; Autoresponder`),
# qmail (`Delivered-To: Autoresponder`), FirstClass (`X-FC-MachineGenerated: true`).
_AUTOREPLY_VALUES: dict[str, re.Pattern[str]] = {
    "x-precedence": re.compile(r"\s*auto[_-]?reply\b", re.IGNORECASE),
    "x-apple-action": re.compile(r"\s*vacation\b", re.IGNORECASE),
    "x-autogenerated": re.compile(r"\s*reply\b", re.IGNORECASE),
    "x-post-messageclass": re.compile(r".*\bautoresponder\b", re.IGNORECASE),
    "delivered-to": re.compile(r"\s*autoresponder\s*$", re.IGNORECASE),
    "x-fc-machinegenerated": re.compile(r"\s*true\b", re.IGNORECASE),
}

# Every header name a rule reads besides From and Subject: one C-level set intersection finds the few
# a message has, so human mail (Return-Path and Content-Type, at most) costs a few microseconds.
_WATCHED: frozenset[str] = frozenset(
    {*_PRESENCE, *_AUTOREPLY_VALUES, "auto-submitted", "return-path", "content-type", "precedence"}
)
_NAME = itemgetter(0)

_FIRST_WORD = re.compile(r"\s*([^\s;(]*)")
# The null reverse path as MTAs write it in `Return-Path:`: `<>` (also `<<>>`, `< >`), nothing at all
# (GMX), `<MAILER-DAEMON>` (IIS SMTP, some Sendmail setups) and qmail's `<#@[]>` (double bounces).
_NULL_PATH = re.compile(r"\s*(?:<\s*(?:<\s*>|mailer-daemon|#@\[\])?\s*>)?\s*(?:\(.*)?$", re.IGNORECASE)
_REPORT = re.compile(r"\s*multipart/report\b", re.IGNORECASE)
_FEEDBACK_TYPE = re.compile(r";\s*report-type\s*=\s*\"?feedback-report\b", re.IGNORECASE)
# `From: MAILER-DAEMON <>` (DragonFly), `From: <>` (McAfee gateways), `From: Mail Delivery Subsystem
# <MAILER-DAEMON>` (Sendmail without masquerading): no address the author logic could see.
_DAEMON_FROM = re.compile(
    r"<>|^\s*(?:[^<]*<\s*)?(?:mailer[-_]?daemon|post[-_]?master)\s*>?\s*(?:\(.*)?$", re.IGNORECASE
)

# Subjects. Every rule matches at the start, after white space and the bracketed tags that gateways
# and lists put in front ("[EXTERNAL] Automatic reply: …", "[users] Out of Office …"); "Re:" is not
# skipped, so a human answer to an auto-reply never matches. The patterns see the start of the subject
# lower-cased with its white space collapsed, and only when it begins with one of `_STEMS`: on human mail
# a C-level `startswith` is all the subject rules cost, and an encoded subject is decoded only when its
# plain start could still be one of them (decoding costs ~40 µs).
_TAG_PREFIX = re.compile(r"\s*(?:\[[^\]]*\]\s*)*")
_ENCODED_WORD = re.compile(r"=\?([^?*]+)(?:\*[^?]*)?\?([bBqQ])\?([^?]*)\?=")

# SPEC's subject rule, with Outlook's localised auto-reply prefixes (German, French, Spanish,
# Italian, Dutch, Portuguese, Swedish/Danish/Norwegian, Finnish, Polish).
_AUTO_SUBJECT = re.compile(
    r"auto(?:matic)?[ -]?(?:reply|response) ?:"  # Outlook/Exchange "Automatic reply:", iCloud "Auto reply:"
    r"|out[ -]of[ -]office\b"  # Exchange 2003 "Out of Office AutoReply:", many vacation subjects
    r"|undeliverable ?:"  # Exchange NDRs
    r"|automatische antwort ?:"
    r"|réponse automatique ?:"
    r"|respuesta automática ?:"
    r"|risposta automatica ?:"
    r"|automatisch antwoord ?:"
    r"|resposta automática ?:"
    r"|automatiskt? svar ?:"
    r"|automaattinen vastaus ?:"
    r"|automatyczna odpowiedź ?:"
)

# Bounce and delay-warning subjects of common MTAs, and Exchange's localised "Undeliverable:". Only
# phrases that are the MTA's own wording: generic ones ("Delivery failure", "Mail delivery failed"
# alone) could be a customer's own subject at a hosting provider's help desk, and the bounces that
# use them are caught by their null sender or MAILER-DAEMON author anyway.
_BOUNCE_SUBJECT = re.compile(
    r"undelivered mail returned to sender"  # Postfix
    r"|(?:mail )?delivery status notification"  # Gmail, Exchange, Sendmail, OpenSMTPD, Zoho…
    r"|returned mail ?:"  # Sendmail, Courier
    r"|postmaster notify ?:"  # Sendmail's copy to the postmaster
    r"|mail delivery failed ?: ?returning message to sender"  # Exim
    r"|mail failed, returning to sender"  # Exim 3, Smail
    r"|mail failure - "  # Exim ("… - malformed recipient address")
    r"|warning: message \S+ delayed"  # Exim delay warnings
    r"|failure notice ?(?::|$)"  # qmail, Yahoo!
    r"|delivery notification: delivery has"  # Lotus Domino ("… failed", "… been delayed")
    r"|mail system error - returned mail"  # Openwave / Mirapoint
    r"|undeliverable (?:mail|message)\b"  # Exchange 5.5, IMail, Verizon MMSC
    r"|delayed mail \(still being retried\)"  # Postfix delay warnings
    r"|warning(?::|--) ?could not send (?:message|mail) for past"  # Sendmail delay warnings
    r"|unzustellbar ?:"  # Exchange, German
    r"|non remis ?:"  # Exchange, French
    r"|no se puede entregar ?:"  # Exchange, Spanish
    r"|non recapitabile ?:"  # Exchange, Italian
    r"|onbestelbaar ?:"  # Exchange, Dutch
    r"|olevererbart ?:"  # Exchange, Swedish
    r"|ваше сообщение не доставлено"  # Mail.Ru
    r"|недоставленное сообщение"  # Yandex
)

# Hotmail / MSN's old complaint reports (before they moved to ARF) carry no report content type.
# They name the sending IP address; a person complaining about a message names someone.
_COMPLAINT_SUBJECT = re.compile(
    r"complaint about message from (?:(?:\d{1,3}\.){3}\d{1,3}\b|[0-9a-f]*:[0-9a-f:]+)"  # IPv4, IPv6
)

# Lower-case starts of every subject pattern above ("no" stands for "non remis", "no se puede…").
_STEMS: tuple[str, ...] = (
    *("auto", "out", "undeliver", "réponse", "respuesta", "risposta", "resposta"),
    *("delivery", "mail", "returned", "postmaster", "warning", "failure", "delayed"),
    *("unzustellbar", "no", "onbestelbaar", "olevererbart", "ваше", "недоставленное", "complaint"),
)

_HEAD_STARTS = ("[", *_STEMS)

# An author local part no person answers from. The words may be split by `-`, `_` or `.` and stand
# among other words ("dmarc-noreply", "no-reply-aws", "opendmarc-postmaster", "post_master").
_NOREPLY = re.compile(
    r"(?:^|[._+-])(?:no[._-]?reply|do[._-]?not[._-]?reply|mailer[._-]?daemon|post[._-]?master)"
    r"(?:$|[._+-]|\d)"
)


def header_reasons(headers: Headers) -> frozenset[str]:
    """Every configuration-independent reason the header block gives for this being automatic mail."""
    present = _WATCHED.intersection(map(_NAME, headers))
    found = {_PRESENCE[name] for name in present if name in _PRESENCE}
    found.update(_value_reasons(headers, present))
    sender = headers.get("from")
    if sender is not None and ("@" not in sender or "<>" in sender) and _DAEMON_FROM.search(sender):
        found.add("daemon-from")
    subject = headers.get("subject")
    found.update(_subject_reasons(subject) if subject else ())
    return frozenset(found)


def _value_reasons(headers: Headers, present: frozenset[str]) -> Iterator[str]:
    """Reasons of the watched headers whose value, not presence, tells."""
    if "auto-submitted" in present and _first_word(headers.get("auto-submitted")) != "no":
        yield "auto-submitted"
    if "return-path" in present and any(_NULL_PATH.match(p) for p in headers.get_all("return-path")):
        yield "null-sender"
    content_type = headers.get("content-type") or ""
    if "content-type" in present and _REPORT.match(content_type):
        yield "multipart-report"
        if _FEEDBACK_TYPE.search(content_type):
            yield "feedback-report"
    if "precedence" in present:
        word = _first_word(headers.get("precedence"))
        if word in ("bulk", "junk", "list"):
            yield "precedence"
        elif word in ("auto_reply", "auto-reply", "autoreply"):
            yield "x-autoreply"  # BoxTrapper, cPanel
    for name in present.intersection(_AUTOREPLY_VALUES):
        if _AUTOREPLY_VALUES[name].match(headers.get(name) or ""):
            yield "x-autoreply"


def _subject_reasons(subject: str) -> Iterator[str]:
    start = _subject_start(subject)
    if start is None:
        return
    if _AUTO_SUBJECT.match(start):
        yield "auto-subject"
    if _BOUNCE_SUBJECT.match(start):
        yield "bounce-subject"
    elif _COMPLAINT_SUBJECT.match(start):
        yield "feedback-report"


def _subject_start(subject: str) -> str | None:
    """The start of the decoded subject, tags skipped, lower-cased, white space collapsed; None when
    it begins with none of `_STEMS` (then no subject rule can match)."""
    if "=?" in subject and _could_match(subject):
        subject = decode_words(subject)
    end = _tag_end(subject)
    start = subject[end : end + 120].lower()
    if not start.startswith(_STEMS):
        return None
    return " ".join(start.split())


def _could_match(subject: str) -> bool:
    """Whether an encoded subject may begin with a stem once decoded: False only when the plain text
    before its first encoded word, or else that word alone, rules every stem out. Decoding the whole
    subject costs ~40 µs; this look at its start, ~2 µs."""
    head, _, _ = subject.partition("=?")
    if not head[_tag_end(head) :]:
        word = _ENCODED_WORD.match(subject, len(head))
        decoded = _decode_word(word) if word else None
        if decoded is None:
            return True
        head = decoded
    head = head[_tag_end(head) :].lower()
    if not head or head.startswith(_HEAD_STARTS):
        return True  # nothing to go by yet, or a tag that the rest of the subject may close
    return any(stem.startswith(head) for stem in _STEMS)


def _decode_word(word: re.Match[str]) -> str | None:
    """The text of one RFC 2047 encoded word, or None when it does not decode."""
    charset, encoding, text = word.groups()
    try:
        if encoding in "bB":
            data = binascii.a2b_base64(text + "=" * (-len(text) % 4))
        else:
            data = binascii.a2b_qp(text, header=True)
        return data.decode(charset, "replace")
    except (binascii.Error, LookupError, ValueError):
        return None


def _tag_end(subject: str) -> int:
    """Where the subject starts after white space and bracketed tags."""
    if not subject or subject[0] not in "[ \t":
        return 0
    match = _TAG_PREFIX.match(subject)
    return match.end() if match else 0


def _first_word(value: str | None) -> str:
    """The first word of a keyword field (`bulk`, `auto-replied; x=1`, `no (comment)`), lower-cased."""
    match = _FIRST_WORD.match(value or "")
    return match.group(1).lower() if match else ""


def author_reason(author: str | None) -> str | None:
    """`noreply-author` when the author's local part is one no person answers from, else None."""
    if not author:
        return None
    local = author.rpartition("@")[0] or author
    return "noreply-author" if _NOREPLY.search(local.lower()) else None


def first_reason(reasons: Iterable[str]) -> str | None:
    """The highest-priority reason of `reasons` (unknown codes last, by name), or None when empty."""
    best: tuple[int, str] | None = None
    for reason in reasons:
        key = (_RANK.get(reason, len(REASONS)), reason)
        if best is None or key < best:
            best = key
    return best[1] if best else None
