"""SIGKILL in the middle of a burst, again and again: how many messages that got a 250 are lost.

Each round starts `ttrd run` on a fresh database, sends from 20 concurrent SMTP sessions, kills the
daemon with SIGKILL once some hundreds of messages got their 250, starts it again and waits until
every message is measured. Prints, per round and in total, the messages that got a 250, those lost
(never stored) and those doubled (stored twice). Both must be 0.

    .venv/bin/python bench/durability_loop.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.daemon import Ttrd  # noqa: E402
from tests.integration.test_durability import check_all_stored_once, kill_during_a_burst  # noqa: E402


def one_round(work: Path, kill_after: int) -> tuple[int, int, int]:
    ttrd = Ttrd(work).start()
    try:
        promised = kill_during_a_burst(ttrd, per_session=100, kill_after=kill_after)
        ttrd.start()
        try:
            counts = check_all_stored_once(ttrd, promised)
        except AssertionError:  # not all there after two minutes: count what is missing
            counts = check_all_stored_once(ttrd, set())
        lost = len(promised - counts.keys())
        doubled = sum(1 for count in counts.values() if count > 1)
        return len(promised), lost, doubled
    finally:
        ttrd.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    totals = [0, 0, 0]
    for number in range(args.rounds):
        work = Path(tempfile.mkdtemp(prefix="ttrd-durability-"))
        try:
            # Vary the moment of the kill from round to round.
            promised, lost, doubled = one_round(work, kill_after=100 + 37 * number)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        totals = [totals[0] + promised, totals[1] + lost, totals[2] + doubled]
        print(f"round {number + 1:2d}: {promised} got 250 before SIGKILL, lost {lost}, doubled {doubled}")
    print(f"total: {totals[0]} messages with a 250, lost {totals[1]}, doubled {totals[2]}")


if __name__ == "__main__":
    main()
