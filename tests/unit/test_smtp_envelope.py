from __future__ import annotations

import pytest

from ttrd.smtp.handler import envelope_recipients

JOURNAL = ["journal@ttrd.invalid", "copies@sink.example.org"]


@pytest.mark.parametrize(
    ("rcpt_tos", "expected"),
    [
        (["journal@ttrd.invalid"], ()),
        (["Journal@TTRD.invalid"], ()),
        (["journal+alice=example.com@ttrd.invalid"], ("alice@example.com",)),
        (["copies+support=eu.example.com@sink.example.org"], ("support@eu.example.com",)),
        (["support@example.com", "journal+support=example.com@ttrd.invalid"], ("support@example.com",)),
        (["journal+first.last=x=y.example@ttrd.invalid"], ("first.last=x@y.example",)),
        (["journal+broken@ttrd.invalid"], ()),
        (["other+alice=example.com@ttrd.invalid"], ("other+alice=example.com@ttrd.invalid",)),
        (["<Bob@Example.COM>"], ("bob@example.com",)),
    ],
)
def test_journal_addresses_are_dropped_and_encoded_recipients_decoded(
    rcpt_tos: list[str], expected: tuple[str, ...]
) -> None:
    assert envelope_recipients(rcpt_tos, JOURNAL) == expected
