"""How the lab's checks read the guest image's report on its console (compose/guestimage.py); the guest's
init script (compose/guest/init) writes the lines, the lab check boots it for real."""

from __future__ import annotations

from compose import guestimage

BOOT = ("SeaBIOS (version 1.16.2)\r\nBooting from Hard Disk...\r\n"
        "goldstack-guest: booted, kernel 6.12.118+deb13-amd64\r\n")
NETWORKED = (BOOT + "goldstack-guest: dhcp eth0 192.168.199.23/24 router 192.168.199.1 mtu 1450\r\n"
             "goldstack-guest: metadata service reached, instance 5f1c1f0e-8b1a-4bd6-9d63-6b5c3f0e2a11\r\n"
             "goldstack-guest: ssh key installed: ssh-ed25519\r\n"
             "goldstack-guest: disk vda 38912 sectors\r\n")


def test_a_networked_guest_reports_its_address_instance_key_and_disks():
    report = guestimage.read_console(NETWORKED + "goldstack-guest: disk vdb 2097152 sectors\r\n")
    assert report.booted and report.ssh_key and not report.trouble
    assert report.address == "192.168.199.23"
    assert report.instance == "5f1c1f0e-8b1a-4bd6-9d63-6b5c3f0e2a11"
    assert report.disks == {"vda": 38912, "vdb": 2097152}


def test_a_detached_disk_leaves_the_report():
    report = guestimage.read_console(NETWORKED + "goldstack-guest: disk vdb 2097152 sectors\n"
                                     "goldstack-guest: disk vdb removed\n")
    assert report.disks == {"vda": 38912}


def test_a_guest_still_booting_has_reported_nothing_yet():
    report = guestimage.read_console("SeaBIOS (version 1.16.2)\r\nBooting from Hard Disk...\r\n")
    assert not report.booted and report.address is None and report.instance is None and report.disks == {}


def test_what_the_guest_lacks_is_reported_as_trouble():
    report = guestimage.read_console(BOOT + "goldstack-guest: dhcp eth0 10.0.0.5/24 router none mtu default\n"
                                     "goldstack-guest: metadata service unreachable\n")
    assert report.address == "10.0.0.5" and report.instance is None
    assert report.trouble == ["metadata service unreachable"]


def test_each_boot_starts_a_new_report():
    report = guestimage.read_console(BOOT + "goldstack-guest: metadata service unreachable\n" + NETWORKED)
    assert not report.trouble and report.instance is not None


def test_lines_of_other_programs_are_not_read_as_the_guest_s():
    report = guestimage.read_console("kernel: dhcp eth0 1.2.3.4/24\nmetadata service reached, instance abc\n")
    assert report == guestimage.Report()
