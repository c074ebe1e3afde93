"""The fast renderer writes exactly what prometheus_client's generate_latest writes."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ttrd.metrics.exposition import Histogram, Renderer

LABEL_VALUES = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
VALUES = st.one_of(st.integers(0, 10**12).map(float), st.floats(allow_nan=False), st.just(float("inf")))
NAMES = ["agent", "clock", "first", "mailbox", "a", "z", "sla", "result"]


class Fixed:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


@st.composite
def families(draw: st.DrawFn) -> list[Metric]:
    found: list[Metric] = []
    for index in range(draw(st.integers(1, 4))):
        labels = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4))
        kind = draw(st.sampled_from(["counter", "gauge", "histogram"]))
        documentation = draw(st.text(max_size=20))
        name = f"ttrd_test_{index}"
        if kind == "counter":
            family: Metric = CounterMetricFamily(name, documentation, labels=labels)
        elif kind == "gauge":
            family = GaugeMetricFamily(name, documentation, labels=labels)
        else:
            family = HistogramMetricFamily(name, documentation, labels=labels)
        for _ in range(draw(st.integers(0, 3))):
            values = [draw(LABEL_VALUES) for _ in labels]
            if kind == "histogram":
                bounds = sorted(draw(st.sets(st.integers(1, 10**6), max_size=4)))
                counts = sorted(
                    draw(st.lists(st.integers(0, 100), min_size=len(bounds) + 1, max_size=len(bounds) + 1))
                )
                buckets = [(repr(float(b)), c) for b, c in zip(bounds, counts, strict=False)] + [
                    ("+Inf", counts[-1])
                ]
                family.add_metric(values, buckets, draw(VALUES))  # type: ignore[attr-defined]
            else:
                family.add_metric(values, draw(VALUES))  # type: ignore[attr-defined]
        found.append(family)
    return found


@settings(max_examples=300, deadline=None)
@given(found=families())
def test_same_bytes_as_generate_latest(found: list[Metric]) -> None:
    registry = CollectorRegistry()
    registry.register(Fixed(found))  # type: ignore[arg-type]
    assert Renderer().render(found) == generate_latest(registry)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_fast_histogram_writes_what_its_samples_would(data: st.DataObject) -> None:
    labelnames = data.draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4))
    bounds = sorted(data.draw(st.sets(st.floats(0.001, 1e7), max_size=5)))
    series = {
        tuple(data.draw(LABEL_VALUES) for _ in labelnames): (
            sorted(
                data.draw(st.lists(st.integers(0, 10**6), min_size=len(bounds) + 1, max_size=len(bounds) + 1))
            ),
            data.draw(VALUES),
        )
        for _ in range(data.draw(st.integers(0, 4)))
    }
    histogram = Histogram("ttrd_fast", data.draw(st.text(max_size=10)), labelnames, bounds, series)
    registry = CollectorRegistry()
    registry.register(Fixed([histogram]))  # type: ignore[arg-type]
    assert Renderer().render([histogram]) == generate_latest(registry)


def test_a_family_handed_out_again_is_not_rendered_again() -> None:
    family = GaugeMetricFamily("ttrd_x", "x", labels=["mailbox"])
    family.add_metric(["support"], 1)
    renderer = Renderer()
    first = renderer.render([family])
    family.samples.clear()  # changed behind the renderer's back: the same object means unchanged
    assert renderer.render([family]) == first
    fresh = GaugeMetricFamily("ttrd_x", "x", labels=["mailbox"])
    assert renderer.render([fresh]) != first


def test_series_kept_from_the_last_render_are_right_after_a_change() -> None:
    bounds = (60.0, 3600.0)
    before = {("support", "alice"): ([1, 2, 2], 70.0), ("sales", "bob"): ([0, 1, 1], 90.0)}
    after = {
        ("support", "alice"): ([1, 2, 3], 4000.0),
        ("sales", "bob"): ([0, 1, 1], 90.0),
        ("x", "y"): ([1, 1, 1], 1.0),
    }
    renderer = Renderer()
    renderer.render([Histogram("ttrd_h", "h", ("mailbox", "agent"), bounds, before)])
    changed = Histogram("ttrd_h", "h", ("mailbox", "agent"), bounds, after)
    registry = CollectorRegistry()
    registry.register(Fixed([Histogram("ttrd_h", "h", ("mailbox", "agent"), bounds, after)]))  # type: ignore[arg-type]
    assert renderer.render([changed]) == generate_latest(registry)
