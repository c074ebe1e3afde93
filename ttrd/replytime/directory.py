"""Who is who: the organisation, its agents and tracked mailboxes, and how addresses resolve (SPEC §1).

Built once from the configuration; every lookup is a dict access on lower-cased addresses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from ttrd.replytime.hours import ALWAYS_OPEN, Schedule

MailboxKind = Literal["shared", "distribution", "list"]


@dataclass(frozen=True, slots=True)
class Sla:
    label: str
    """As configured ("4h"); the `sla` label of metrics."""
    seconds: float


class _Addressed:
    """An agent or a mailbox: reached at its address and at each of its aliases."""

    __slots__ = ()
    address: str
    aliases: tuple[str, ...]

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.address, *self.aliases)


@dataclass(frozen=True, slots=True)
class Agent(_Addressed):
    id: str
    address: str
    aliases: tuple[str, ...] = ()
    name: str = ""
    teams: tuple[str, ...] = ()
    schedule: str | None = None


@dataclass(frozen=True, slots=True)
class Mailbox(_Addressed):
    id: str
    address: str
    kind: MailboxKind
    aliases: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    list_id: str | None = None
    """Explicit or, for a `list` mailbox, the default derived from its address."""
    sla: tuple[Sla, ...] = ()
    schedule: str | None = None


@dataclass(frozen=True, slots=True)
class Organization:
    domains: tuple[str, ...]
    window_days: float = 30
    list_addresses: tuple[str, ...] = ()

    @property
    def window_seconds(self) -> float:
        return self.window_days * 86400.0


@dataclass(frozen=True, slots=True)
class Context:
    """Where an item lives: a tracked mailbox or an agent's own mailbox."""

    id: str
    mailbox: Mailbox | None
    agent: Agent | None
    schedule: Schedule
    sla: tuple[Sla, ...]

    @property
    def addresses(self) -> tuple[str, ...]:
        if self.mailbox is not None:
            return self.mailbox.addresses
        return self.agent.addresses if self.agent is not None else ()


def default_list_id(address: str) -> str:
    """The Mailman / Google Groups convention: `users@lists.example.com` → `users.lists.example.com`."""
    return address.replace("@", ".")


class Directory:
    """The resolved organisation: contexts by id and by address, list addresses, tracked list ids."""

    def __init__(
        self,
        organization: Organization,
        agents: Iterable[Agent] = (),
        mailboxes: Iterable[Mailbox] = (),
        schedules: Mapping[str, Schedule] | None = None,
    ) -> None:
        self.organization = organization
        self.agents = tuple(agents)
        self.mailboxes = tuple(mailboxes)
        self.schedules: Mapping[str, Schedule] = dict(schedules or {})
        self.contexts: dict[str, Context] = {}
        for agent in self.agents:
            self.contexts[agent.id] = Context(agent.id, None, agent, self._schedule(agent.schedule), ())
        for mailbox in self.mailboxes:
            self.contexts[mailbox.id] = Context(
                mailbox.id, mailbox, None, self._schedule(mailbox.schedule), mailbox.sla
            )
        self._by_address = {
            address: context for context in self.contexts.values() for address in context.addresses
        }
        self._agent_by_address = {address: agent for agent in self.agents for address in agent.addresses}
        self._list_addresses = frozenset(organization.list_addresses) | {
            address for mailbox in self.mailboxes if mailbox.kind == "list" for address in mailbox.addresses
        }
        self._tracked_list_ids = frozenset(m.list_id.lower() for m in self.mailboxes if m.list_id)
        self._domains = frozenset(domain.lower() for domain in organization.domains)

    def _schedule(self, name: str | None) -> Schedule:
        if name is not None:
            return self.schedules[name]
        return self.schedules.get("default", ALWAYS_OPEN)

    def context(self, context_id: str) -> Context | None:
        return self.contexts.get(context_id)

    def agent(self, agent_id: str) -> Agent | None:
        context = self.contexts.get(agent_id)
        return context.agent if context is not None else None

    def resolve(self, address: str) -> Context | None:
        """The context an address (lower case) reaches, through addresses and aliases."""
        return self._by_address.get(address)

    def agent_for(self, address: str | None) -> Agent | None:
        return None if address is None else self._agent_by_address.get(address)

    def is_internal(self, address: str) -> bool:
        """An address is internal when its domain is an organisation domain or a subdomain of one."""
        domain = address.rpartition("@")[2]
        while domain not in self._domains:
            _, dot, domain = domain.partition(".")
            if not dot:
                return False
        return True

    def is_list_address(self, address: str) -> bool:
        return address in self._list_addresses

    def is_tracked_list_id(self, list_id: str | None) -> bool:
        return list_id is not None and list_id in self._tracked_list_ids

    def contexts_of(self, recipients: Iterable[str], to_cc: frozenset[str]) -> list[Context]:
        """The contexts a message opens items in (SPEC §1, "Context"), sorted by id.

        A member of a tracked mailbox that is itself a recipient got the message through that mailbox,
        so gets no item of their own, unless their own address or alias is in To: or Cc:.
        """
        found = {context.id: context for context in map(self.resolve, recipients) if context is not None}
        reached_through = {
            member for context in found.values() if context.mailbox for member in context.mailbox.members
        }
        return [
            context
            for context_id, context in sorted(found.items())
            if not (
                context.agent is not None
                and context.agent.id in reached_through
                and to_cc.isdisjoint(context.agent.addresses)
            )
        ]
