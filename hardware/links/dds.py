"""ROS 2 topics over Cyclone DDS, without a ROS 2 install.

A publisher or subscriber here is what a ROS 2 node on rmw_cyclonedds_cpp
would create: topic `/x` is the DDS topic `rt/x`, the type is the message's
DDS name (`hardware.links.ros2_msgs`), and the endpoint's USER_DATA carries
`typehash=RIHS01_...;` as Iron and later write and expect. So real ROS 2
nodes on the same domain exchange messages with s2r.

Endpoints from Fast DDS (vendor 1.15, ROS 2's default middleware) are matched
by topic and type name, as rmw_cyclonedds_cpp matches them, not by the XTypes
type information they carry: Fast DDS 3 (Kilted and later) sends type objects
whose collection members have no try-construct flag, which Cyclone DDS
rejects as invalid; with that allowed it still finds the two descriptions of
builtin_interfaces/Time not assignable, though the bytes on the wire (XCDR1)
are the same. Without this no message crosses between the two.

`loopback=True` confines discovery and traffic to 127.0.0.1 (unicast, no
multicast), which is how the tests keep to one machine; each test uses a
domain id of its own so that runs do not see each other. Otherwise the
configuration in CYCLONEDDS_URI applies on top.
"""

from __future__ import annotations

import os
import threading

from cyclonedds.builtin import BuiltinDataReader, BuiltinTopicDcpsPublication
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy, Qos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

FAST_DDS_VENDOR = "1.15"
INTEROP_CONFIG = (
    '<CycloneDDS><Domain id="any"><Compatibility>'
    f"<IgnoreTypeInformation>{FAST_DDS_VENDOR}</IgnoreTypeInformation>"
    "</Compatibility></Domain></CycloneDDS>"
)
LOOPBACK_CONFIG = (
    '<CycloneDDS><Domain id="any"><General><Interfaces><NetworkInterface name="lo"/></Interfaces>'
    "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
    '<MaxAutoParticipantIndex>100</MaxAutoParticipantIndex><Peers><Peer address="127.0.0.1"/></Peers>'
    "</Discovery></Domain></CycloneDDS>"
)

# One configured domain per id and process, kept alive as long as the process: (loopback, domain).
_DOMAINS: dict[int, tuple[bool, Domain]] = {}
_DOMAINS_LOCK = threading.Lock()


def domain_config(loopback: bool) -> str:
    """The Cyclone DDS configuration s2r runs a domain with (fragments joined by commas)."""
    if loopback:
        return f"{INTEROP_CONFIG},{LOOPBACK_CONFIG}"
    user = os.environ.get("CYCLONEDDS_URI", "").strip()
    return f"{INTEROP_CONFIG},{user}" if user else INTEROP_CONFIG


def dds_topic(topic: str) -> str:
    """ROS 2's DDS topic name for a topic: `/joint_states` -> `rt/joint_states`."""
    if not topic.startswith("/") or topic.endswith("/") or "//" in topic:
        raise ValueError(f"invalid ROS 2 topic {topic!r}: expected an absolute name like /joint_states")
    return "rt" + topic


def qos(message_type, reliable: bool, depth: int) -> Qos:
    """ROS 2's QoS profiles: sensor data is best effort (keep last `depth`), commands reliable."""
    reliability = (
        Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100))
        if reliable
        else Policy.Reliability.BestEffort
    )
    return Qos(
        reliability,
        Policy.History.KeepLast(depth),
        Policy.Durability.Volatile,
        Policy.Userdata(f"typehash={message_type.type_hash};".encode()),
    )


class DdsTransport:
    """One DDS participant on `domain_id`; creates ROS 2 publishers and subscribers."""

    def __init__(self, domain_id: int = 0, loopback: bool = False):
        if not 0 <= domain_id <= 232:
            raise ValueError(f"ROS 2 domain ids are 0..232, got {domain_id}")
        self.domain_id = domain_id
        with _DOMAINS_LOCK:
            if domain_id not in _DOMAINS:
                _DOMAINS[domain_id] = (loopback, Domain(domain_id, domain_config(loopback)))
            elif _DOMAINS[domain_id][0] != loopback:
                raise ValueError(
                    f"ROS 2 domain {domain_id} is already open in this process with loopback={not loopback}"
                )
        self.participant = DomainParticipant(domain_id)
        self._topics: dict[str, Topic] = {}
        # Discovery data from the start, to tell what is published on a topic (publisher_types).
        self._publications = BuiltinDataReader(self.participant, BuiltinTopicDcpsPublication)
        self._published: dict[str, set[str]] = {}

    def _topic(self, topic: str, message_type) -> Topic:
        name = dds_topic(topic)
        existing = self._topics.get(name)
        if existing is None:
            existing = self._topics[name] = Topic(self.participant, name, message_type)
        return existing

    def publisher(self, topic: str, message_type, reliable: bool = True, depth: int = 10) -> DataWriter:
        return DataWriter(self.participant, self._topic(topic, message_type), qos(message_type, reliable, depth))

    def subscriber(self, topic: str, message_type, reliable: bool = False, depth: int = 5) -> DataReader:
        return DataReader(self.participant, self._topic(topic, message_type), qos(message_type, reliable, depth))

    @staticmethod
    def matched(endpoint: DataWriter | DataReader) -> int:
        """How many subscribers a publisher, or publishers a subscriber, is matched with."""
        try:
            if isinstance(endpoint, DataWriter):
                return len(endpoint.get_matched_subscriptions())
            return len(endpoint.get_matched_publications())
        except IndexError:  # Cyclone's list changed between its count and its read: ask again later
            return 0

    def close(self) -> None:
        """Let go of this transport's participant; Cyclone DDS deletes it, and the endpoints created
        from it, once they are no longer referenced."""
        self._topics.clear()
        self._publications = self.participant = None

    def publisher_types(self, topic: str) -> set[str]:
        """ROS 2 type names (`pkg/msg/T`) of the publishers discovered on `topic` so far."""
        for p in self._publications.take(256):
            if hasattr(p, "topic_name"):
                package, _, rest = p.type_name.partition("::msg::dds_::")
                name = f"{package}/msg/{rest.removesuffix('_')}" if rest else p.type_name
                self._published.setdefault(p.topic_name, set()).add(name)
        return set(self._published.get(dds_topic(topic), set()))
