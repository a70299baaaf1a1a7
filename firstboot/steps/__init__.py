"""The first-boot steps, one module each; the engine orders them by their `after` lists."""

from __future__ import annotations

from firstboot.steps.base import Step
from firstboot.steps.compute import ComputeStep
from firstboot.steps.config import ConfigStep
from firstboot.steps.galera import GaleraEndpointStep, GaleraStep
from firstboot.steps.hosts import HostsStep
from firstboot.steps.network import NetworkStep
from firstboot.steps.rabbitmq import RabbitmqBootStep, RabbitmqStep
from firstboot.steps.runonce import CatalogStep, DatabasesStep
from firstboot.steps.services import ImageStoreStep, InfraStep, KeystoneStep, ServicesStep
from firstboot.steps.storage import CephMonStep, CephOsdStep, CephPoolsStep, VolumeStep

# Controller order: rabbitmq-boot (a node that ran before) -> galera -> infra (HAProxy + VIP, which every
# database URL goes through) -> rabbitmq -> databases -> keystone -> catalog -> services -> network ->
# image-store. Compute: network -> compute. Storage: ceph-mon -> ceph-osd -> ceph-pools -> volume.
ALL_STEPS: tuple[Step, ...] = (
    HostsStep(), ConfigStep(), RabbitmqBootStep(), GaleraEndpointStep(), GaleraStep(), InfraStep(), RabbitmqStep(),
    DatabasesStep(), KeystoneStep(), CatalogStep(), ServicesStep(), NetworkStep(), ComputeStep(), CephMonStep(),
    CephOsdStep(), CephPoolsStep(), VolumeStep(), ImageStoreStep(),
)
