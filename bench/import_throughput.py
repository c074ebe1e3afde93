"""Import throughput on the usrp-users corpus, as a ratio to a plain parse of the same file.

Baseline: `mailbox.mbox` + `email.parser.BytesHeaderParser` over the decompressed mbox — what any
Python tool must at least do. Measured: `ttrd import` of the same decompressed mbox into a fresh
SQLite database (parse, dedupe, engine, storage), and of the `.xz` as shipped. Runs alternate,
each in its own process, and the medians are compared, because this machine is shared and noisy.

    .venv/bin/python bench/import_throughput.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import lzma
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "usrp-users" / "usrp-users-headers.mbox.xz"
CONFIG = ROOT / "examples" / "usrp-users.toml"
TTRD = Path(sys.executable).parent / "ttrd"

BASELINE = """
import email.parser, mailbox, sys
parser = email.parser.BytesHeaderParser()
box = mailbox.mbox(sys.argv[1], create=False)
count = sum(1 for key in box.iterkeys() if parser.parsebytes(box.get_bytes(key)) is not None)
print(count)
"""


def run(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB and stdout+stderr of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    output = process.stdout.read().decode() if process.stdout else ""
    if status != 0:
        raise SystemExit(f"{command[0]} failed:\n{output}")
    return elapsed, usage.ru_maxrss / 1024, output


def ttrd_import(work: Path, source: Path, round_: int) -> tuple[float, float, str]:
    config = work / f"ttrd-{round_}-{source.suffix.strip('.')}.toml"
    database = work / f"{config.stem}.db"
    text = CONFIG.read_text().replace('url = "sqlite:///var/usrp-users.db"', f'url = "sqlite:///{database}"')
    config.write_text(text)
    return run([str(TTRD), "import", "--config", str(config), str(source)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ttrd-bench-"))
    try:
        plain = work / "usrp-users.mbox"
        with lzma.open(CORPUS) as packed, plain.open("wb") as unpacked:
            shutil.copyfileobj(packed, unpacked, 1 << 20)
        baseline, plain_runs, xz_runs = [], [], []
        messages = 0
        for round_ in range(args.rounds):
            seconds, _, output = run([sys.executable, "-c", BASELINE, str(plain)])
            baseline.append(seconds)
            messages = int(output.split()[-1])
            plain_runs.append(ttrd_import(work, plain, round_))
            xz_runs.append(ttrd_import(work, CORPUS, round_))
        base = statistics.median(baseline)
        print(f"messages: {messages}; rounds: {args.rounds} (medians)")
        print(f"baseline mailbox.mbox + BytesHeaderParser: {base:.2f} s, {messages / base:,.0f} msg/s")
        for label, runs in (("ttrd import (plain mbox)", plain_runs), ("ttrd import (.xz)", xz_runs)):
            seconds = statistics.median(r[0] for r in runs)
            rss = max(r[1] for r in runs)
            print(
                f"{label}: {seconds:.2f} s, {messages / seconds:,.0f} msg/s, "
                f"ratio to baseline {base / seconds:.2f}, peak RSS {rss:.0f} MB"
            )
        print("last summary:", xz_runs[-1][2].strip().splitlines()[-1])
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
