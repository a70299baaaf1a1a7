"""Host facts the agent probes: here, whether a KVM guest can really start (virt_type auto)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from firstboot import document, facts


def test_no_kvm_device_means_qemu(tmp_path):
    usable, why = facts.kvm_guest_starts(tmp_path)
    assert not usable and "/dev/kvm" in why


@pytest.mark.skipif(shutil.which(facts.QEMU) is None, reason="the test command installs qemu-system-x86")
def test_the_probe_recognises_a_guest_that_runs():
    """Positive control on real QEMU: software emulation always runs the firmware to its end."""
    usable, why = facts.guest_runs_firmware("tcg", "max")
    assert usable, why


@pytest.mark.skipif(shutil.which(facts.QEMU) is None, reason="the test command installs qemu-system-x86")
def test_the_kvm_probe_gives_a_verdict_with_its_reason():
    usable, why = facts.kvm_guest_starts(facts.Path("/"))
    assert isinstance(usable, bool) and why
    if usable:
        assert "ran its firmware" in why


def test_only_compute_nodes_probe_and_explicit_choices_win(doc_of, tmp_path):
    doc = document.validate(doc_of("cmp1"), "cmp1")
    assert facts.virt_type(doc, tmp_path) == "qemu"  # no /dev/kvm under tmp_path
    raw = doc_of("cmp1")
    raw.setdefault("options", {})["virt_type"] = "kvm"
    assert facts.virt_type(document.validate(raw, "cmp1"), tmp_path) == "kvm"
    assert facts.virt_type(document.validate(doc_of("ctl1"), "ctl1"), tmp_path) == "qemu"


def test_every_nic_named_by_mac_must_be_here():
    links = [{"ifname": "lo", "address": "00:00:00:00:00:00"}, {"ifname": "eth0", "address": "52:54:00:99:00:21"}]
    facts.check_macs({"management": "52:54:00:99:00:21".upper()}, links)  # case does not matter
    with pytest.raises(facts.NicMissing) as caught:
        facts.check_macs({"management": "52:54:00:99:00:21", "provider": "52:54:00:99:01:21"}, links)
    message = str(caught.value)
    assert "node.macs.provider: no NIC has 52:54:00:99:01:21" in message and "management" not in message.split("(")[0]
    assert "this machine's NICs: eth0 52:54:00:99:00:21" in message and "lo " not in message


def test_the_osd_disk_the_document_names_must_be_a_disk_here(tmp_path):
    sys_block = tmp_path / "sys-block"
    for name in ("vda", "loop0", "sda"):
        (sys_block / name).mkdir(parents=True)
    with pytest.raises(facts.DiskMissing) as caught:
        facts.check_osd_device("/dev/goldstack-no-such-disk", sys_block)
    message = str(caught.value)
    assert message.startswith("node.osd_device: /dev/goldstack-no-such-disk: no such file or directory")
    assert "(this machine's disks: sda, vda)" in message and "fix the inventory's osd_device" in message
    plain = tmp_path / "disk.img"
    plain.write_bytes(b"")
    with pytest.raises(facts.DiskMissing, match="not a block device"):
        facts.check_osd_device(str(plain), sys_block)
    device = next((str(p) for p in sorted(Path("/dev").iterdir()) if p.is_block_device()), None)
    if device is None:
        pytest.skip("no block device on this machine to pass")
    facts.check_osd_device(device, sys_block)  # a block device passes, whatever it holds


@pytest.mark.skipif(shutil.which(facts.QEMU) is None or not facts.UEFI_CODE.exists(),
                    reason="the test command installs qemu-system-x86 and ovmf")
def test_the_probe_recognises_uefi_firmware_that_runs():
    """Positive control for the VMs' probe: OVMF under software emulation reaches its boot manager."""
    usable, why = facts.guest_runs_firmware("tcg", "max", uefi=True)
    assert usable, why
