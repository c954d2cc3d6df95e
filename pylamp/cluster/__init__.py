"""The whole cluster: every server of a topology, each in its own process."""

from pylamp.cluster.supervisor import Cluster, ClusterError

__all__ = ["Cluster", "ClusterError"]
