"""The first-boot steps, one module each; the engine orders them by their `after` lists."""

from __future__ import annotations

from firstboot.steps.base import Step
from firstboot.steps.config import ConfigStep
from firstboot.steps.hosts import HostsStep

ALL_STEPS: tuple[Step, ...] = (HostsStep(), ConfigStep())
