"""``bench.routing_pass.sections``: the CPU-by-stage breakdown counts each stage once per
outermost call and always puts the real functions back."""

from __future__ import annotations

import pytest

from bench import routing_pass


def _busy(n: int) -> int:
    return sum(i * i for i in range(n))


class Work:
    @staticmethod
    def outer(n: int) -> int:
        return _busy(n) + Work.inner(n) + Work.alias(n)

    @staticmethod
    def inner(n: int) -> int:
        return _busy(n)

    @staticmethod
    def alias(n: int) -> int:  # the same stage under a second name, as routing.assess is confidence.assess
        return Work.outer(0) if n else 0


STAGES = (("outer", Work, "outer"), ("outer", Work, "alias"), ("inner", Work, "inner"))


def test_stages_are_timed_once_per_outermost_call_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    before = {name: Work.__dict__[name] for _, _, name in STAGES}
    monkeypatch.setattr(routing_pass, "STAGES", STAGES)
    found = routing_pass.sections(
        {"a": lambda q: Work.outer(20_000), "b": lambda q: Work.inner(20_000)}, ["q"] * 5
    )
    assert {name: Work.__dict__[name] for _, _, name in STAGES} == before
    a, b = found["a"], found["b"]
    assert 0 < a["inner"] < a["outer"] <= a["whole ask"]
    assert "outer" not in b and 0 < b["inner"] <= b["whole ask"]


def test_the_real_functions_come_back_when_a_question_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    before = {name: Work.__dict__[name] for _, _, name in STAGES}
    monkeypatch.setattr(routing_pass, "STAGES", STAGES)

    def fails(q: str) -> object:
        Work.inner(10)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        routing_pass.sections({"a": fails}, ["q"])
    assert {name: Work.__dict__[name] for _, _, name in STAGES} == before
