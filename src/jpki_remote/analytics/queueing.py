"""Erlang C (M/M/c): the steady-state waiting time of a counter with ``c`` windows.

Arrivals are Poisson with rate λ, service times exponential with rate μ (mean 1/μ), ``c`` identical windows serving
one queue first come first served. With offered load a = λ/μ and utilisation ρ = a/c < 1:

* Erlang B by the stable recursion B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1));
* probability of waiting C(c, a) = c·B / (c − a·(1 − B));
* mean wait in queue Wq = C / (cμ − λ); P(wait > t) = C·exp(−(cμ − λ)·t).

At ρ ≥ 1 there is no steady state: the queue grows without bound for as long as the load lasts, which is what a
10× surge does to a counter. Those cases go to the discrete-event simulation (:mod:`.simulation`), which shows the
queue building up day by day instead of a number that does not exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class Overloaded(ValueError):
    """ρ ≥ 1: no steady state exists."""


@dataclass(frozen=True)
class QueueMetrics:
    servers: int
    arrival_rate: float  # λ, per unit time
    service_rate: float  # μ, per unit time per server
    utilisation: float  # ρ = λ / (c μ)
    probability_of_waiting: float  # C(c, a)
    mean_wait: float  # Wq, same time unit
    mean_queue_length: float  # Lq = λ Wq
    mean_time_in_system: float  # W = Wq + 1/μ

    @property
    def stable(self) -> bool:
        return self.utilisation < 1.0

    def wait_exceeds(self, t: float) -> float:
        """P(wait > t)."""
        if not self.stable:
            return 1.0
        return self.probability_of_waiting * math.exp(-(self.servers * self.service_rate - self.arrival_rate) * t)


def erlang_b(servers: int, offered_load: float) -> float:
    """Blocking probability of M/M/c/c (Erlang B)."""
    if servers < 0 or offered_load < 0:
        raise ValueError("servers and offered load must not be negative")
    b = 1.0
    for k in range(1, servers + 1):
        b = offered_load * b / (k + offered_load * b)
    return b


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits, C(c, a); 1.0 when a ≥ c (no steady state)."""
    if servers < 1:
        raise ValueError("at least one server is needed")
    if offered_load < 0:
        raise ValueError("offered load must not be negative")
    if offered_load == 0:
        return 0.0
    if offered_load >= servers:
        return 1.0
    b = erlang_b(servers, offered_load)
    denominator = servers - offered_load * (1.0 - b)
    return servers * b / denominator if denominator > 0 else 1.0  # a within rounding of c: no steady state


def mmc(arrival_rate: float, service_rate: float, servers: int) -> QueueMetrics:
    """M/M/c steady state; raises :class:`Overloaded` when λ ≥ cμ."""
    if arrival_rate < 0 or service_rate <= 0:
        raise ValueError("arrival rate must be ≥ 0 and service rate > 0")
    if servers < 1:
        raise ValueError("at least one server is needed")
    offered = arrival_rate / service_rate
    rho = offered / servers
    if rho >= 1.0 or servers * service_rate - arrival_rate <= 0:  # the second: ρ < 1 lost to rounding
        raise Overloaded(f"utilisation {rho:.2f} ≥ 1 with {servers} server(s): the queue grows without bound")
    c_prob = erlang_c(servers, offered)
    wq = c_prob / (servers * service_rate - arrival_rate) if arrival_rate > 0 else 0.0
    return QueueMetrics(servers, arrival_rate, service_rate, rho, c_prob, wq, arrival_rate * wq, wq + 1 / service_rate)


def mean_wait_or_inf(arrival_rate: float, service_rate: float, servers: int) -> float:
    try:
        return mmc(arrival_rate, service_rate, servers).mean_wait
    except Overloaded:
        return math.inf


def servers_needed(arrival_rate: float, service_rate: float, target_mean_wait: float, max_servers: int = 1000) -> int:
    """The fewest servers that keep the mean wait Wq at or below ``target_mean_wait``."""
    if target_mean_wait < 0:
        raise ValueError("target wait must not be negative")
    if arrival_rate == 0:
        return 0
    start = max(1, math.floor(arrival_rate / service_rate) + 1)
    for c in range(start, max_servers + 1):
        if mean_wait_or_inf(arrival_rate, service_rate, c) <= target_mean_wait:
            return c
    raise ValueError(f"more than {max_servers} servers would be needed")
