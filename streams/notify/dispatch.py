"""Alertmanager-like dispatch: routing, grouping per room, dedup, silences, inhibition.

Pure: transitions and the wall clock in, notifications due out. A group is one
receiver's view of one room. Its first alert waits `group_wait` so alerts that
fire together go out together; later changes go out at most every
`group_interval`; alerts still firing are repeated every `repeat_interval`. A
group sends the latest state of each alert; an alert that fired and resolved
within `group_wait` (event time) sends nothing. While a room has
an inhibiting alert firing (a traffic cliff), its target alerts (stall and
latency SLOs) are left out. The alerts topic is at-least-once (a worker that takes
over a partition sends again what the dead one sent after its last checkpoint), so
a transition seen before, one of the last `SEEN` by its identity, is dropped.
Each transition carries a token (its Kafka offset)
that is handed back once every notification including it has been produced,
so the notifier can commit only what is safely out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Final

from detectors.alerts import Transition
from streams.notify.config import NotifyConfig
from streams.notify.formats import Notification
from streams.notify.silences import SilenceStore
from streams.notify.wording import safe

Token = Hashable
AlertId = tuple[str, str | None]
"""(alert type, region) within a room."""
SEEN: Final = 10_000
"""Transitions remembered to drop their copies: far more than a partition's worker
sends between two checkpoints."""


@dataclass
class _Group:
    receiver: str
    room_id: str
    alerts: dict[AlertId, Transition] = field(default_factory=dict)
    announced: set[AlertId] = field(default_factory=set)
    """Alerts whose firing has been sent: only those get a resolved message."""
    changed: set[AlertId] = field(default_factory=set)
    tokens: list[Token] = field(default_factory=list)
    next_send: float | None = None
    last_sent: float | None = None


@dataclass
class Due:
    notification: Notification | None
    """None when nothing is left to say (inhibited, or resolved before it was sent)."""
    tokens: list[Token]


class Dispatcher:
    def __init__(self, config: NotifyConfig, silences: SilenceStore | None = None) -> None:
        self.config = config
        self.silences = silences
        self.groups: dict[tuple[str, str], _Group] = {}
        self.latest: dict[tuple[str, str, str | None], Transition] = {}
        """(room, alert, region) -> its firing transition, whoever it is routed to
        (inhibition); resolved alerts leave."""
        self.seen: OrderedDict[tuple[object, ...], None] = OrderedDict()
        """Identities of the last SEEN transitions, oldest first."""

    def add(self, t: Transition, token: Token, now: float) -> int:
        """Take one transition; return how many groups now hold its token (0: done)."""
        alert_id: AlertId = (t.alert, t.region)
        identity = (t.room_id, t.alert, t.region, t.state, t.severity, t.started_at, t.ts)
        if identity in self.seen:
            return 0  # a copy: redelivered, or sent again by a worker taking over
        self.seen[identity] = None
        if len(self.seen) > SEEN:
            self.seen.popitem(last=False)
        if t.state == "firing":
            self.latest[(t.room_id, *alert_id)] = t
        else:
            self.latest.pop((t.room_id, *alert_id), None)
        if self.silences is not None and self.silences.silenced(t, int(now * 1000)):
            return 0
        receivers = self.config.receivers_for(t)
        for receiver in receivers:
            group = self.groups.get((receiver, t.room_id))
            if group is None:
                group = self.groups[(receiver, t.room_id)] = _Group(receiver, t.room_id)
            group.alerts[alert_id] = t
            group.changed.add(alert_id)
            group.tokens.append(token)
            if group.next_send is None:
                group.next_send = (
                    now + self.config.group_wait_s
                    if group.last_sent is None
                    else max(now, group.last_sent + self.config.group_interval_s)
                )
        return len(receivers)

    def due(self, now: float) -> list[Due]:
        out = []
        for key, group in list(self.groups.items()):
            if group.next_send is not None and group.next_send <= now:
                out.append(self._send(group, now))
            elif (
                group.next_send is None
                and group.last_sent is not None
                and now - group.last_sent >= self.config.repeat_interval_s
            ):
                firing = self._firing(group)
                if firing:
                    group.last_sent = now
                    out.append(Due(self._notification(group, firing), []))
            if not group.alerts and not group.tokens and group.next_send is None:
                del self.groups[key]
        return out

    def _send(self, group: _Group, now: float) -> Due:
        firing = self._firing(group)
        # A resolution is news if its firing went out, or if it lasted group_wait in
        # event time (both read from a backlog at once, after a notifier outage).
        wait_ms = self.config.group_wait_s * 1000
        resolved = [
            a
            for alert_id, a in group.alerts.items()
            if a.state == "resolved"
            and alert_id in group.changed
            and (alert_id in group.announced or a.ts - a.started_at >= wait_ms)
            and not self._inhibited(a)
        ]
        for alert_id, a in list(group.alerts.items()):
            if a.state == "resolved":
                del group.alerts[alert_id]
                group.announced.discard(alert_id)
        group.announced |= {(a.alert, a.region) for a in firing}
        tokens, group.tokens = group.tokens, []
        group.changed.clear()
        group.next_send = None
        announce = sorted(firing + resolved, key=lambda a: (a.ts, a.alert, a.region or ""))
        if not announce:
            return Due(None, tokens)
        group.last_sent = now
        return Due(self._notification(group, announce), tokens)

    def _firing(self, group: _Group) -> list[Transition]:
        return [a for a in group.alerts.values() if a.state == "firing" and not self._inhibited(a)]

    def _inhibited(self, t: Transition) -> bool:
        return any(
            t.alert in rule.target_alerts
            and any(
                room == t.room_id and alert == rule.source_alert for room, alert, _ in self.latest
            )
            for rule in self.config.inhibit
        )

    def _notification(self, group: _Group, alerts: list[Transition]) -> Notification:
        return Notification(
            group.receiver,
            group.room_id,
            tuple(alerts),
            group_key=f'{{}}/{{receiver="{group.receiver}"}}:{{room="{safe(group.room_id, 128)}"}}',
        )
