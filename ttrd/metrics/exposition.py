"""The Prometheus text format (0.0.4), written fast: the same bytes as `generate_latest`.

`generate_latest` sorts and escapes every label of every sample; with 200 agents and 50 mailboxes
the reply-time histogram alone has tens of thousands of samples, and that costs more than reading
the database. Here the labels of a series are formatted once for all its buckets, values that repeat
are formatted once, and a family that the collector hands out again unchanged (the same object:
the histogram between two batches of mail) is not rendered again. The tests compare the output with
`generate_latest` byte for byte.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString as _untyped_go_string

_go_string: Callable[[float], str] = _untyped_go_string
"""The reference formatting of values (Go's, as Prometheus writes them)."""

_PROMETHEUS_TYPES = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "unknown": "untyped"}


SeriesKey = tuple[tuple[str, ...], tuple[int, ...], float]
"""A histogram series as written: its label values, cumulative counts and sum."""


class Histogram(Metric):
    """A histogram family given as cumulative counts per series, written straight to text.

    Building prometheus_client's samples (one object per bucket of every series) costs more than
    writing the text; they are built only when someone other than the Renderer asks for `samples`
    (`generate_latest`, which the tests compare with).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        bounds: Sequence[float],
        series: Mapping[tuple[str, ...], tuple[Sequence[int], float]],
    ) -> None:
        super().__init__(name, documentation, "histogram")
        del self.samples  # built on first access, by __getattr__
        self._labelnames = tuple(labelnames)
        self._edges = [*map(repr, bounds), "+Inf"]
        self._series = series

    def __getattr__(self, name: str) -> Any:
        if name != "samples":
            raise AttributeError(name)
        family = HistogramMetricFamily(self.name, self.documentation, labels=self._labelnames)
        for values, (cumulative, total) in self._series.items():
            family.add_metric(list(values), list(zip(self._edges, cumulative, strict=True)), total)
        self.samples = family.samples
        return self.samples

    def text(self, known: Mapping[SeriesKey, str] | None = None) -> tuple[str, dict[SeriesKey, str]]:
        """The text, and the text of each series; series found in `known` are not written again."""
        name = self.name
        help_text = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        written: dict[SeriesKey, str] = {}
        for values, (cumulative, total) in self._series.items():
            key = (values, tuple(cumulative), total)
            text = (known or {}).get(key)
            written[key] = text if text is not None else self._series_text(values, cumulative, total)
        return f"# HELP {name} {help_text}\n# TYPE {name} histogram\n" + "".join(written.values()), written

    def _series_text(self, values: tuple[str, ...], cumulative: Sequence[int], total: float) -> str:
        name = self.name
        before, after = _split_at_le(tuple(sorted(zip(self._labelnames, values, strict=True))))
        joined = _braced(before, after)
        head = f'{name}_bucket{{{before}{"," if before else ""}le="'
        tail = f'"{"," if after else ""}{after}}} '
        lines = [
            f"{head}{edge}{tail}{_counted(count)}\n"
            for edge, count in zip(self._edges, cumulative, strict=True)
        ]
        lines.append(f"{name}_count{joined} {_counted(cumulative[-1])}\n")
        lines.append(f"{name}_sum{joined} {_go_string(total)}\n")
        return "".join(lines)


class Renderer:
    """Renders metric families; remembers the text of the families of the last render."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[Metric, str]] = {}
        self._series: dict[str, dict[SeriesKey, str]] = {}

    def render(self, families: Iterable[Metric]) -> bytes:
        texts: list[str] = []
        kept: dict[int, tuple[Metric, str]] = {}
        for family in families:
            cached = self._last.get(id(family))
            # The family itself is kept alongside, so its id cannot be reused by another object.
            if cached is not None and cached[0] is family:
                text = cached[1]
            elif isinstance(family, Histogram):
                # Between two batches of mail most series are unchanged: their text is kept.
                text, self._series[family.name] = family.text(self._series.get(family.name))
            else:
                text = _family(family)
            kept[id(family)] = (family, text)
            texts.append(text)
        self._last = kept
        return "".join(texts).encode("utf-8")


def _family(family: Metric) -> str:
    name = family.name + "_total" if family.type == "counter" else family.name
    kind = _PROMETHEUS_TYPES.get(family.type)
    if kind is None:
        raise ValueError(f"metric type {family.type!r} of {family.name} is not rendered here")
    help_text = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
    lines = [f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"]
    labels_of: dict[tuple[tuple[str, str], ...], tuple[str, str]] = {}
    values: dict[float, str] = {}
    for sample in family.samples:
        if sample.timestamp is not None or sample.exemplar is not None:
            raise ValueError(f"{family.name}: timestamps and exemplars are not rendered here")
        # -0.0 == 0.0 for a dict, not for the format: zeros are written each time.
        value = values.get(sample.value) if sample.value else None
        if value is None:
            value = values[sample.value] = _go_string(sample.value)
        labels = sample.labels
        if not labels:
            lines.append(f"{sample.name} {value}\n")
            continue
        le = labels.get("le")
        series = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        parts = labels_of.get(series)
        if parts is None:
            parts = labels_of[series] = _split_at_le(series)
        before, after = parts
        if le is None:
            lines.append(f"{sample.name}{_braced(before, after)} {value}\n")
        else:
            middle = f'le="{_escape(le)}"'
            if before:
                middle = "," + middle
            if after:
                middle += ","
            lines.append(f"{sample.name}{{{before}{middle}{after}}} {value}\n")
    return "".join(lines)


def _braced(before: str, after: str) -> str:
    """The label set of a sample without `le`: nothing when there are no labels."""
    joined = f"{before},{after}" if before and after else before or after
    return "{" + joined + "}" if joined else ""


@functools.lru_cache(maxsize=4096)
def _counted(count: int) -> str:
    return _go_string(count)


def _split_at_le(series: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """The label text before and after where `le` sorts, so a bucket's label set is one insertion."""
    before = ",".join(f'{k}="{_escape(v)}"' for k, v in series if k < "le")
    after = ",".join(f'{k}="{_escape(v)}"' for k, v in series if k > "le")
    return before, after


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
