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

# The engine orders these by their `after` lists; `python -m firstboot steps` shows each role's order.
ALL_STEPS: tuple[Step, ...] = (
    HostsStep(), ConfigStep(), RabbitmqBootStep(), GaleraEndpointStep(), GaleraStep(), InfraStep(), RabbitmqStep(),
    MessagingStep(), DatabasesStep(), KeystoneStep(), CatalogStep(), ServicesStep(), NetworkStep(), ComputeStep(),
    CephMonStep(), CephOsdStep(), CephPoolsStep(), VolumeStep(), ImageStoreStep(),
)
