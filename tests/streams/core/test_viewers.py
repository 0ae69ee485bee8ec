"""Online viewers as columns: the same answers as the two maps they replaced."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.persist import dump, load
from streams.core.viewers import Viewers
from streams.worker.checkpoint import STATE_CLASSES

USERS = st.sampled_from([f"u{i}" for i in range(12)])
OPS = st.lists(
    st.tuples(
        st.sampled_from(["start", "see", "end", "see_many", "idle"]), USERS, st.integers(0, 600_000)
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_viewers_answer_as_the_maps_of_joins_and_last_seen_did(
    ops: list[tuple[str, str, int]],
) -> None:
    viewers, joined, seen = Viewers(), {}, {}
    for op, user, ts in ops:
        if op == "start" and user not in joined:
            viewers.start(user, ts)
            joined[user] = seen[user] = ts
        elif op == "see" and user in joined:
            viewers.see(user, ts)
            seen[user] = max(seen[user], ts)
        elif op == "see_many":
            online = sorted(joined)
            batch = [(u, ts + i * 7_919 % 5_000 - 2_500) for i, u in enumerate(online * 2)]
            viewers.see_many([viewers.slot[u] for u, _ in batch], [t for _, t in batch])
            for u, t in batch:
                seen[u] = max(seen[u], t)
        elif op == "end" and user in joined:
            assert viewers.end(user) == joined.pop(user)
            del seen[user]
        elif op == "idle":
            assert viewers.idle(ts) == sorted(u for u, t in seen.items() if t < ts)
        assert len(viewers) == len(joined) and set(viewers) == set(joined)
        assert {u: (viewers.joined_at(u), viewers.seen_at(u)) for u in joined} == {
            u: (joined[u], seen[u]) for u in joined
        }
        assert viewers.oldest_seen() == min(seen.values(), default=None)
        assert viewers.joined_at("nobody") is None and "nobody" not in viewers


def test_slots_are_reused_and_an_empty_room_holds_no_array() -> None:
    viewers = Viewers()
    for i in range(5):
        viewers.start(f"u{i}", 1_000 + i)
    assert len(viewers.times) == 8  # grown from 4
    viewers.end("u1")
    viewers.start("u9", 2_000)
    assert viewers.slot["u9"] == 1 and len(viewers.times) == 8
    for user in list(viewers):
        viewers.end(user)
    assert len(viewers) == 0 and viewers.times.size == 0 and viewers.oldest_seen() is None
    viewers.start("u1", 3_000)  # and it fills again from slot 0
    assert viewers.slot == {"u1": 0} and viewers.seen_at("u1") == 3_000


def test_viewers_survive_a_checkpoint() -> None:
    viewers = Viewers()
    for i in range(6):
        viewers.start(f"u{i}", 1_000 * i)
    viewers.end("u2")
    viewers.see("u3", 9_000)
    restored = load(dump(viewers, STATE_CLASSES), STATE_CLASSES, Viewers)
    assert dict(restored.slot) == dict(viewers.slot) and restored.free == viewers.free
    assert (restored.times == viewers.times).all()
    restored.start("u7", 10_000)  # into u2's freed slot
    assert restored.slot["u7"] == viewers.slot.get("u2", 2) and restored.idle(3_500) == ["u0", "u1"]
