"""The agent's own metrics for Prometheus (beside Hubble's flow metrics):

    membrane_endpoint_regeneration_time_seconds   histogram, one observation per
                                                  endpoint regeneration
    membrane_endpoint_state{endpoint_state}       endpoints by lifecycle state
    membrane_bpf_map_entries{map_name}            entries in each BPF map
    membrane_bpf_map_pressure{map_name}           entries / capacity (0..1), as
                                                  Cilium's bpf_map_pressure
    membrane_lost_events_total{source}            events lost before a reader saw
                                                  them, by where (kernel ring, queue,
                                                  flow ring)

The gauges are read at scrape time from `AgentGauges` the agent hands over as a
function (its status, in memory); nothing is polled in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

NAMESPACE = "membrane"
REGENERATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                        5, 10)


@dataclass(frozen=True)
class AgentGauges:
    endpoints_by_state: dict[str, int] = field(default_factory=dict)
    maps: dict[str, tuple[int, int]] = field(default_factory=dict)   # (entries, capacity)
    lost_events: dict[str, int] = field(default_factory=dict)        # by LostEventSource


class _GaugeCollector(Collector):
    def __init__(self, read: Callable[[], AgentGauges]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        g = self._read()
        state = GaugeMetricFamily(f"{NAMESPACE}_endpoint_state",
                                  "Endpoints by lifecycle state", labels=["endpoint_state"])
        for name, n in sorted(g.endpoints_by_state.items()):
            state.add_metric([name], n)
        entries = GaugeMetricFamily(f"{NAMESPACE}_bpf_map_entries",
                                    "Entries in each BPF map", labels=["map_name"])
        pressure = GaugeMetricFamily(f"{NAMESPACE}_bpf_map_pressure",
                                     "Fill of each BPF map: entries / capacity",
                                     labels=["map_name"])
        for name, (n, capacity) in sorted(g.maps.items()):
            entries.add_metric([name], n)
            pressure.add_metric([name], n / capacity if capacity else 0.0)
        lost = CounterMetricFamily(f"{NAMESPACE}_lost_events",
                                   "Events lost before a reader saw them, by where",
                                   labels=["source"])
        for source, n in sorted(g.lost_events.items()):
            lost.add_metric([source], n)
        yield from (state, entries, pressure, lost)


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None,
                 gauges: Callable[[], AgentGauges] | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.regeneration = Histogram(
            f"{NAMESPACE}_endpoint_regeneration_time_seconds",
            "Time to compute and write one endpoint's policy to the datapath",
            buckets=REGENERATION_BUCKETS, registry=self.registry)
        if gauges is not None:
            self.read_gauges(gauges)

    def read_gauges(self, gauges: Callable[[], AgentGauges]) -> None:
        """Serve the gauges `gauges()` returns at each scrape (once; the agent hands its
        status in after building the parts that need the histogram)."""
        self.registry.register(_GaugeCollector(gauges))

    def observe_regeneration(self, seconds: float) -> None:
        self.regeneration.observe(seconds)
