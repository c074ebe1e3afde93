"""The systemd notify protocol (sd_notify(3)) without a dependency, as synapse does it in 20 lines.

`ttrd run` is a `Type=notify` service (systemd/ttrd.service): it says `READY=1` once the SMTP sink
accepts mail, `WATCHDOG=1` from a periodic check that has just proven the event loop and the storage
alive, `STOPPING=1` when it starts draining on SIGTERM. Every function here is a no-op that returns
False when the process is not under systemd ($NOTIFY_SOCKET unset), and none raises or waits because
the socket is missing, broken or full (a message systemd has no room for is dropped): telling
systemd is best effort, and losing mail because a status line could not be sent would be absurd.
Failures are logged at debug level.

The protocol: one datagram of newline-separated `NAME=value` assignments to the AF_UNIX datagram
socket named by $NOTIFY_SOCKET (a leading "@" means the abstract namespace). systemd identifies the
sender by the kernel's credentials on the datagram; the unit's `NotifyAccess=main` makes it ignore
every process but the main one, so the ingest worker cannot change the service's state. A child
process inherits the variables; one that forks without exec can call `unset_environment()`.

Watchdog: with `WatchdogSec=` systemd sets $WATCHDOG_USEC (and $WATCHDOG_PID, the main PID) and
kills the service with SIGABRT when no `WATCHDOG=1` arrives within that time; `watchdog_interval()`
gives the period at which to send it: half the timeout, as sd_watchdog_enabled(3) recommends, so one
late tick (a slow storage check, a busy loop) is not yet fatal. A watchdog ping must come from code
that did real work — e.g. a task on the event loop that runs a trivial read on the storage and
then calls `watchdog()` — never from a thread of its own, which would keep a hung daemon alive.

No asyncio here: the daemon calls these from its loop, and each call is one short datagram send.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

_ENVIRONMENT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def notify(*states: str) -> bool:
    """Send `states` (e.g. "READY=1", "STATUS=accepting mail") to systemd as one message.

    Returns True when the message was handed to the notify socket, False when not under systemd,
    when there is nothing to send, or when the socket is missing or broken (logged at debug).
    """
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or not states:
        return False
    if len(address) < 2 or address[0] not in "/@":
        log.debug("NOTIFY_SOCKET=%r is neither a socket path nor an abstract name", address)
        return False
    if address[0] == "@":
        address = "\0" + address[1:]  # the abstract namespace
    message = "\n".join(states).encode("utf-8", "replace")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # Never wait: with systemd's queue full, a send with a timeout spins on EAGAIN for all of
            # it (poll says writable, the receiver's queue is what is full) and stalls the event loop.
            sock.setblocking(False)
            sock.sendto(message, address)
    except (OSError, ValueError) as error:
        log.debug("cannot notify systemd at %r: %s", os.environ.get("NOTIFY_SOCKET"), error)
        return False
    return True


def _text(text: str) -> str:
    """A value on one line: a newline in a status text would start a new assignment."""
    return " ".join(text.splitlines())


def status(text: str) -> bool:
    """Set the free-form status line `systemctl status ttrd` shows."""
    return notify(f"STATUS={_text(text)}")


def ready(status: str | None = None) -> bool:
    """Startup is complete: the service accepts mail. systemd then starts units ordered after it."""
    return notify("READY=1", *([f"STATUS={_text(status)}"] if status is not None else []))


def stopping(status: str | None = None) -> bool:
    """Shutdown has begun (draining); systemd shows the unit as deactivating."""
    return notify("STOPPING=1", *([f"STATUS={_text(status)}"] if status is not None else []))


def watchdog() -> bool:
    """Keep-alive: call only right after checking that the event loop and the storage work."""
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Seconds between two `watchdog()` calls, or None when systemd expects none from this process.

    Half of $WATCHDOG_USEC. None when it is unset, not a positive integer, or when $WATCHDOG_PID is
    set and is not this process (a child process inherits the environment but not the duty).
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if usec is None:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    try:
        timeout = int(usec)
        if pid is not None and int(pid) != os.getpid():
            return None
    except ValueError:
        log.debug("WATCHDOG_USEC=%r or WATCHDOG_PID=%r is not a number: no watchdog", usec, pid)
        return None
    if timeout <= 0:
        return None
    return timeout / 2 / 1_000_000


def unset_environment() -> None:
    """Forget $NOTIFY_SOCKET and the watchdog variables, e.g. in a child process that must not notify."""
    for name in _ENVIRONMENT:
        os.environ.pop(name, None)
