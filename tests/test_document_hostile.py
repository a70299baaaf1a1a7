"""Hostile documents (issue 28): what a file format would read differently, or what costs without bound, is
refused at parsing or validation with one message naming the field; nothing is ever rendered from it."""

from __future__ import annotations

import json
import shutil
import string
import subprocess

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firstboot import document
from firstboot.errors import InvalidInput


def refused(text: str) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        document.load_text(text, "test document")
    return [str(p) for p in info.value.problems]


def refused_data(data) -> list[str]:
    return refused(json.dumps(data))


def test_a_name_ending_in_a_line_break_is_refused(doc_of):
    data = doc_of("ctl1")
    data["cluster"] = "site1\n"
    assert any(m.startswith("(document).cluster: 'site1\\n' is not valid") for m in refused_data(data))


@pytest.mark.parametrize("value", ["noauth2\r[DEFAULT]", "a\nauth_strategy = noauth2", ["ok", "x\ny"]])
def test_an_override_value_with_a_line_break_is_refused(doc_of, value):
    data = doc_of("ctl1")
    data["overrides"] = {"nova": {"DEFAULT": {"debug": value}}}
    assert any(m.startswith("overrides.nova.DEFAULT.debug: must be a single-line") for m in refused_data(data))


@pytest.mark.parametrize("section, key", [("DEFAULT\n", "debug"), ("DEFAULT", "debug\n")])
def test_an_override_name_ending_in_a_line_break_is_refused(doc_of, section, key):
    data = doc_of("ctl1")
    data["overrides"] = {"nova": {section: {key: "true"}}}
    assert any("line break" in m or "is not a valid" in m for m in refused_data(data))


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f"])
def test_a_control_character_anywhere_is_refused(doc_of, char):
    data = doc_of("ctl1")
    secret = next(iter(data["secrets"]))
    data["secrets"][secret] = f"Abc{char}def0123456789XYZabc"
    messages = refused_data(data)
    assert messages == [f"secrets.{secret}: holds a control character (NUL, ESC, ...): no configuration file "
                        "can carry it; remove it"]


def test_a_key_given_twice_is_refused_in_yaml_and_in_json(doc_of):
    text = yaml.safe_dump(doc_of("ctl1"))
    assert any("the key 'cluster' is given twice" in m for m in refused(text + "cluster: other\n"))
    body = json.dumps(doc_of("ctl1"))
    assert any("is given twice" in m for m in refused(body[:-1] + ', "version": 1}'))


def test_version_true_is_not_version_1(doc_of):
    data = doc_of("ctl1")
    data["version"] = True
    assert any(m.startswith("version: True is not supported") for m in refused_data(data))


def test_a_document_over_the_size_limit_is_refused_before_parsing():
    messages = refused("a: " + "x" * document.MAX_BYTES)
    assert len(messages) == 1 and "a document may be at most 1048576" in messages[0]


def test_an_alias_bomb_is_refused_not_expanded():
    lines = ["a0: [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    text = "\n".join(f"{line.split(':')[0]}: &{line.split(':')[0]} {line.split(': ', 1)[1]}" for line in lines)
    messages = refused(text + "\n")
    assert len(messages) == 1 and f"holds more than {document.MAX_VALUES} values" in messages[0]


@pytest.mark.parametrize("depth", [document.MAX_DEPTH + 5, 5000])
def test_deep_nesting_is_one_message_not_a_traceback(depth):
    messages = refused("a: " + "[" * depth + "]" * depth + "\n")
    assert len(messages) == 1 and f"nests deeper than {document.MAX_DEPTH} levels" in messages[0]


def test_bytes_that_are_not_utf8_are_one_message(tmp_path):
    from firstboot.sources import local

    node = tmp_path / "node.yaml"
    node.write_bytes(b"version: 1\ncluster: caf\xe9\n")
    with pytest.raises(InvalidInput) as info:
        local.read_file(tmp_path, node)
    assert [str(p) for p in info.value.problems] == [
        "(document): is not UTF-8 text (byte 0xe9 at offset 23); save it as UTF-8"]


@pytest.mark.parametrize("value", ["cinder\nvolumes", "-vg", "vg name", "x" * 128, "vg$1"])
def test_an_lvm_volume_group_is_a_volume_group_name(doc_of, value):
    data = doc_of("ctl1")
    data["options"] = {"lvm_volume_group": value}
    assert [m for m in refused_data(data) if m.startswith("options.lvm_volume_group: must be a volume group")]


@pytest.mark.parametrize("value", ["ntp.example.org\n[DEFAULT]", "pool ntp.org iburst", "-x", "a..b"])
def test_an_ntp_server_is_a_host_name_or_an_address(doc_of, value):
    data = doc_of("ctl1")
    data["options"] = {"ntp_servers": ["ntp1.example.org", value]}
    assert any(m.startswith("options.ntp_servers: ") and "neither a host name" in m for m in refused_data(data))


def test_good_ntp_servers_and_volume_group_pass(doc_of):
    data = doc_of("ctl1")
    data["options"] = {"ntp_servers": ["ntp1.example.org", "192.0.2.5", "2001:db8::5", "time."],
                       "lvm_volume_group": "cinder-volumes_2.x+"}
    assert document.validate(data).options["ntp_servers"][1] == "192.0.2.5"


@pytest.mark.parametrize("device", ["/dev/../etc/shadow", "/dev/./vdb", "/dev//vdb", "/dev/vdb/", "//dev/vdb",
                                    "/dev/vdb\n", "/etc/shadow"])
def test_an_osd_device_is_a_plain_device_path(doc_of, device):
    data = doc_of("sto1")
    data["node"]["osd_device"] = device
    assert any(m.startswith("node.osd_device: ") for m in refused_data(data))


def test_a_normal_osd_device_passes(doc_of):
    data = doc_of("sto1")
    data["node"]["osd_device"] = "/dev/disk/by-id/virtio-osd1"
    assert document.validate(data).node.osd_device == "/dev/disk/by-id/virtio-osd1"


@pytest.mark.parametrize("address, why", [("0.0.0.0", "the unspecified"), ("127.0.0.5", "a loopback"),
                                          ("224.0.0.9", "a multicast"), ("169.254.1.1", "a link-local"),
                                          ("255.255.255.255", "a reserved"), ("::", "the unspecified"),
                                          ("::ffff:10.99.0.11", "an IPv4-mapped")])
def test_an_address_no_host_can_have_is_refused(doc_of, address, why):
    data = doc_of("ctl1")
    data["vip"] = address
    assert any(m.startswith(f"vip.address: {address} is {why}") for m in refused_data(data))


@pytest.mark.parametrize("address, why", [("10.99.0.0", "the network address of"),
                                          ("10.99.0.255", "the broadcast address of"), ("10.98.0.4", "outside")])
def test_a_node_address_must_be_a_host_of_its_network(doc_of, address, why):
    data = doc_of("ctl1")
    data["vip"] = address
    assert any(m.startswith(f"vip.address: {address} is {why} networks.management") for m in refused_data(data))


def test_ipv4_and_ipv6_are_not_mixed_on_one_network(doc_of):
    data = doc_of("ctl1")
    del data["networks"]
    data["vip"] = "fd00::10"
    assert any(m.startswith("peers.") and "give every management address (and the VIP) one IP version" in m
               for m in refused_data(data))


@pytest.mark.parametrize("fsid", ["urn:uuid:6f1c1f8e-8f07-4c43-9b7e-4f58e1a3b6a1",
                                  "6F1C1F8E-8F07-4C43-9B7E-4F58E1A3B6A1", "{6f1c1f8e-8f07-4c43-9b7e-4f58e1a3b6a1}",
                                  "6f1c1f8e8f074c439b7e4f58e1a3b6a1"])
def test_a_ceph_fsid_is_a_plain_lower_case_uuid(doc_of, fsid):
    data = doc_of("sto1")
    data["secrets"]["ceph_fsid"] = fsid
    assert refused_data(data) == ["secrets.ceph_fsid: must be written as a plain lower-case UUID, like "
                                  "6f1c1f8e-8f07-4c43-9b7e-4f58e1a3b6a1"]


@pytest.mark.parametrize("cookie, message", [
    ("ÄÖÜßäöüéèàçñÅØÆåøæÉÈÀ", "must be 20 to 255 ASCII letters or digits (what Erlang accepts as a cookie)"),
    ("A" * 256, "must be 20 to 255 ASCII letters or digits (what Erlang accepts as a cookie)"),
    (12345678901234567890123, "must be a string of letters and digits (quote it in YAML if it is all digits)")])
def test_an_erlang_cookie_is_what_erlang_accepts(doc_of, cookie, message):
    data = doc_of("ctl1")
    data["secrets"]["erlang_cookie"] = cookie
    assert refused_data(data) == [f"secrets.erlang_cookie: {message}"]


def test_an_override_of_a_file_the_site_does_not_render_is_refused(inventory, site_secrets):
    from tests.conftest import make_doc

    inventory["nodes"] = [n for n in inventory["nodes"] if n["role"] != "storage"]
    data = make_doc(inventory, "cmp1", site_secrets)
    data["overrides"] = {"ceph": {"global": {"debug_ms": "1"}}}
    assert refused_data(data) == ["overrides.ceph: this site renders no ceph file for a compute (Ceph's needs "
                                  "storage nodes; cinder's LVM needs cinder_backend lvm); remove the override"]


def test_an_invalid_role_is_the_only_message_about_the_node(doc_of):
    data = doc_of("ctl1")
    data["node"]["role"] = "controler"
    data["overrides"] = {"nova": {"DEFAULT": {"debug": "true"}}}
    messages = refused_data(data)
    assert messages[0].startswith("node.role: 'controler' is not a role") and \
        not [m for m in messages if m.startswith("overrides")], messages


def test_an_unknown_stop_after_step_is_refused_by_validate_and_render(doc_of, tmp_path):
    from firstboot import cli

    data = doc_of("cmp1")
    data["options"] = {"stop_after": "nova-computer"}
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(data))
    for command in (["validate", str(path)], ["render", "--document", str(path), "--out", str(tmp_path / "out")]):
        assert cli.main(command) == 3
    assert not (tmp_path / "out").exists()


def test_an_osd_device_that_is_no_block_device_is_refused(tmp_path):
    from firstboot import ceph

    plain = tmp_path / "disk.img"
    plain.write_bytes(b"\0" * 4096)
    with pytest.raises(ceph.DeviceRefused, match="is not a block device"):
        ceph.check_osd_device(str(plain), wipe=True)
    with pytest.raises(ceph.DeviceRefused, match="No such file"):
        ceph.check_osd_device(str(tmp_path / "absent"), wipe=True)


@pytest.mark.skipif(not shutil.which("mkfs.ext4") or not shutil.which("sfdisk"), reason="needs e2fsprogs, fdisk")
def test_blkid_finds_a_file_system_and_a_partition_table(tmp_path):
    """What would make the OSD step refuse a disk (signatures), read by blkid from real images of each."""
    from firstboot import ceph

    empty, ext4, gpt = (tmp_path / n for n in ("empty.img", "ext4.img", "gpt.img"))
    for image in (empty, ext4, gpt):
        image.write_bytes(b"\0" * (8 << 20))
    subprocess.run(["mkfs.ext4", "-q", "-F", str(ext4)], check=True)
    subprocess.run(["sfdisk", "-q", str(gpt)], input="label: gpt\n,\n", text=True, check=True)
    assert ceph.signatures(str(empty)) == []
    assert ceph.signatures(str(ext4)) == ["a file system or label: ext4"]
    assert ceph.signatures(str(gpt)) == ["a partition table: gpt"]


# Every free-text field of a document but secrets and overrides (tests/test_secret_encoding.py has those):
# where it is in the document, and the field path its message names.
FIELDS = {
    "cluster": (("cluster",), "(document).cluster"),
    "region": (("region",), "(document).region"),
    "vip hostname": (("vip", "hostname"), "vip.hostname"),
    "interface": (("node", "interfaces", "management"), "node.interfaces.management"),
    "volume group": (("options", "lvm_volume_group"), "options.lvm_volume_group"),
    "ntp server": (("options", "ntp_servers"), "options.ntp_servers"),
    "osd device": (("node", "osd_device"), "node.osd_device"),
}
# What any of them may hold once accepted: nothing a file format gives a meaning (quotes, comments, $, \,
# white space, line breaks, controls).
PLAIN = set(string.ascii_letters + string.digits + "._:/@+-")


@given(field=st.sampled_from(sorted(FIELDS)),
       value=st.text(st.characters(min_codepoint=0x09, max_codepoint=0x7E) | st.sampled_from("é\u2028\x85"),
                     max_size=20))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_free_text_field_holds_only_plain_characters_or_is_refused_by_name(doc_of, field, value):
    where, path = FIELDS[field]
    data = doc_of("sto1")
    if where[0] == "vip":
        data["vip"] = {"address": data["vip"], "hostname": value}
    else:
        target = data
        for key in where[:-1]:
            target = target.setdefault(key, {})
        target[where[-1]] = [value] if field == "ntp server" else value
    try:
        document.validate(data)
    except InvalidInput as exc:
        assert [p for p in exc.problems if p.field == path], (path, exc.problems)
        return
    assert value and set(value) <= PLAIN, (field, value)
