from __future__ import annotations

import io
import json

from rich.console import Console

from ttrd.views import print_json_lines


def test_json_lines_stay_one_line_each_for_every_line_reader() -> None:
    record = {"customer": "jo\x85@x\u2028y\u2029z", "mailbox": "support\n"}
    buffer = io.StringIO()
    print_json_lines([record, record], Console(file=buffer, soft_wrap=True))
    lines = buffer.getvalue().splitlines()  # splits at \x85, \u2028 and \u2029 too
    assert [json.loads(line) for line in lines] == [record, record]
