"""Identity number space and the reserved identities (the numbers are Cilium's)."""

from __future__ import annotations

from enum import IntEnum

from identity.labels import SOURCE_RESERVED, Label, LabelSet

MIN_LABEL_IDENTITY = 256           # identities allocated from labels start here
MAX_LABEL_IDENTITY = (1 << 24) - 1
MIN_CIDR_IDENTITY = 1 << 24        # identities of ipBlock prefixes (node-local)
MAX_CIDR_IDENTITY = (1 << 32) - 1


class ReservedIdentity(IntEnum):
    HOST = 1            # the local node
    WORLD = 2           # anything outside the cluster
    UNMANAGED = 3       # pods Membrane does not manage
    HEALTH = 4
    INIT = 5            # an endpoint whose labels are not known yet
    REMOTE_NODE = 6     # other nodes of the cluster
    KUBE_APISERVER = 7

    @property
    def label_name(self) -> str:
        return self.name.lower().replace("_", "-")

    @property
    def labels(self) -> LabelSet:
        return LabelSet([Label(SOURCE_RESERVED, self.label_name)])


def is_reserved(identity: int) -> bool:
    return 0 < identity < MIN_LABEL_IDENTITY


def is_cidr(identity: int) -> bool:
    return identity >= MIN_CIDR_IDENTITY
