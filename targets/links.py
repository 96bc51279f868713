"""Links between devices: the time of each collective op of a sharded module (`dialects.q35_collectives`).

Devices are numbered stage by stage: stage s of a placement with tp devices per stage uses devices
s*tp .. s*tp + tp - 1, and device d sits in node d // devices_per_node (`system.devices_per_node`). A
tensor-parallel group never leaves its node (`targets.placement`), so its collectives run over the links inside a
node (`[interconnect]`); a transfer between stages in different nodes crosses the network between nodes
(`[network]`: one NIC per device) or, where the spec has no network (a direct topology: Groq's C2C), the same
links with `system.hops_between_nodes` hops.

With A the payload per device (bytes), g the devices taking part, B the bandwidth from one device to one peer in
one direction (`Interconnect.peer_bytes_per_s`: half the both-directions figure behind a switch, the peer links'
figure for point-to-point links) and t the per-hop latency, a collective takes the faster of two algorithms, as
collective libraries and serving runtimes choose by message size:

    ring (bandwidth-optimal)
        all_reduce (reduce-scatter, then all-gather)     t = 2 (g-1)/g * A / B + 2 (g-1) * t_hop
        all_gather                                       t =   (g-1)/g * A / B +   (g-1) * t_hop
    one-shot (latency-optimal: every device sends its part to every other, then reduces or concatenates)
        all_reduce                                       t = (g-1) * A / B_out + t_hop
        all_gather                                       t = (g-1) * A/g / B_out + t_hop
      where B_out is what one device sends to all its peers at once: B per peer in parallel over point-to-point
      links (peer_links given), else B shared by all of them (one switch port): B_out = B / (g-1) per peer then.
    transfer (send/recv between stages)                  t = A / B + hops * t_hop

Bytes on links: what every device of the group sends under the algorithm chosen. Links cost time only: the specs
give no energy per bit for them.
"""

from __future__ import annotations

from q35c.analysis.workload import Collective
from q35c.targets.spec import HardwareSpec


def _node(spec: HardwareSpec, device: int) -> int:
    per_node = spec.system.devices_per_node
    return device // int(per_node.value) if per_node is not None else device


def collective_time(spec: HardwareSpec, collective: Collective, tp: int) -> tuple[float, float, str]:
    """(seconds, bytes sent on links by all devices taking part, the resource name) of one call of `collective`
    in a placement with `tp` devices per stage."""
    link = spec.interconnect
    if link is None:
        raise ValueError(f"{spec.name} has no device links, but the module has a {collective.kind}")
    g, payload = collective.group, collective.payload_bytes
    if collective.kind == "transfer":
        sender, receiver = collective.source * tp, collective.dest * tp
        if _node(spec, sender) == _node(spec, receiver):
            seconds = payload / link.peer_bytes_per_s + link.hop_seconds
            return seconds, payload * tp, f"{link.kind} stage transfers"
        if spec.network is not None:
            net = spec.network
            return payload / net.bytes_per_s + net.latency.value, payload * tp, f"{net.kind} stage transfers"
        hops = spec.system.hops_between_nodes.value if spec.system.hops_between_nodes is not None else 1.0
        seconds = payload / link.peer_bytes_per_s + hops * link.hop_seconds
        return seconds, payload * tp, f"{link.kind} stage transfers"
    steps = 2 if collective.kind == "all_reduce" else 1
    peer, hop = link.peer_bytes_per_s, link.hop_seconds
    ring_sent = steps * (g - 1) / g * payload
    ring = ring_sent / peer + steps * (g - 1) * hop
    part = payload if collective.kind == "all_reduce" else payload / g
    shot_sent = (g - 1) * part
    parallel = link.peer_links is not None and link.link_bandwidth is not None  # a link to each peer
    shot = (part if parallel else shot_sent) / peer + hop
    name = f"{link.kind} {collective.kind.replace('_', '-')}"
    if shot < ring:
        return shot, shot_sent * g, name
    return ring, ring_sent * g, name
