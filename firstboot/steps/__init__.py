"""The first-boot steps, one module each; the engine orders them by their `after` lists."""

from __future__ import annotations

from firstboot.steps.base import Step
from firstboot.steps.compute import ComputeStep
from firstboot.steps.config import ConfigStep
from firstboot.steps.galera import GaleraEndpointStep, GaleraStep
from firstboot.steps.hosts import HostsStep
from firstboot.steps.network import NetworkStep
from firstboot.steps.rabbitmq import RabbitmqBootStep, RabbitmqStep
from firstboot.steps.runonce import CatalogStep, DatabasesStep, MessagingStep
from firstboot.steps.services import ImageStoreStep, InfraStep, KeystoneStep, ServicesStep
from firstboot.steps.storage import CephMonStep, CephOsdStep, CephPoolsStep, VolumeStep

# Each step starts once the steps in its `after` are done; on a controller two lines run side by side:
#   galera-endpoint -> galera -> infra (HAProxy + VIP, which every database URL goes through) -> databases
#     -> keystone -> catalog -> image-store
#   rabbitmq-boot (a node that ran before) -> rabbitmq (the cluster) -> rabbitmq-users (after infra too)
# and meet at services (after catalog and rabbitmq-users) -> network.
# Compute: network and compute side by side (compute starts libvirt while network waits for neutron).
# Storage: ceph-mon -> ceph-osd -> ceph-pools -> volume.
ALL_STEPS: tuple[Step, ...] = (
    HostsStep(), ConfigStep(), RabbitmqBootStep(), GaleraEndpointStep(), GaleraStep(), InfraStep(), RabbitmqStep(),
    MessagingStep(), DatabasesStep(), KeystoneStep(), CatalogStep(), ServicesStep(), NetworkStep(), ComputeStep(),
    CephMonStep(), CephOsdStep(), CephPoolsStep(), VolumeStep(), ImageStoreStep(),
)
