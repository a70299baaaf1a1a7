"""Every metadata source, read from real fixtures: seed directories, ISO images, an HTTP server."""

from __future__ import annotations

import socket
import time
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pycdlib
import pytest
import yaml

from firstboot import document, seed, sources
from firstboot.errors import NoMetadata, SourceError
from firstboot.sources import metadata_http
from tests.metadata_server import MetadataServer


@pytest.fixture
def node_doc(doc_of):
    return doc_of("ctl2")


@pytest.fixture
def seeds(tmp_path, node_doc) -> Path:
    out = tmp_path / "seed"
    seed.build_node(out, node_doc, seed.FORMATS)
    return out


def _name_of(found) -> str:
    return document.load_text(found.text, found.where).node.name


def _opts(root: Path, **kw) -> sources.SourceOptions:
    kw.setdefault("metadata_url", "http://127.0.0.1:9")  # discard port: nothing listens
    return sources.SourceOptions(root=root, **kw)


def _place(source: Path, root: Path, where: str) -> Path:
    """Move a seed tree to where cloud-init keeps seeds under a node root."""
    target = root / where
    target.parent.mkdir(parents=True, exist_ok=True)
    source.rename(target)
    return target


def test_nocloud_seed_directory_in_the_cloud_init_location(tmp_path, seeds):
    root = tmp_path / "root"
    target = _place(seeds / "nocloud", root, "var/lib/cloud/seed/nocloud")
    found = sources.discover(_opts(root))
    assert found.source == "nocloud" and found.where == str(target)
    assert _name_of(found) == "ctl2"


def test_nocloud_iso_by_path_and_by_label(tmp_path, seeds):
    found = sources.discover(_opts(tmp_path, seed=seeds / "nocloud.iso"), "nocloud")
    assert _name_of(found) == "ctl2"
    # A udev by-label link, as a VM with the seed attached as a CD-ROM has.
    dev = tmp_path / "root/dev"
    (dev / "disk/by-label").mkdir(parents=True)
    (dev / "sr0").write_bytes((seeds / "nocloud.iso").read_bytes())
    (dev / "disk/by-label/cidata").symlink_to(dev / "sr0")
    found = sources.discover(_opts(tmp_path / "root"))
    assert found.source == "nocloud" and found.where == str(dev / "sr0")


def test_seed_isos_carry_the_datasource_labels(seeds):
    for name, label in (("nocloud.iso", "cidata"), ("configdrive.iso", "config-2")):
        iso = pycdlib.PyCdlib()
        iso.open(str(seeds / name))
        try:
            assert iso.pvd.volume_identifier.decode().strip() == label
            assert iso.has_rock_ridge() and iso.has_joliet()
        finally:
            iso.close()


def test_configdrive_tree_and_iso(tmp_path, seeds):
    root = tmp_path / "root"
    _place(seeds / "configdrive", root, "var/lib/cloud/seed/config_drive")
    found = sources.discover(_opts(root))
    assert found.source == "configdrive" and _name_of(found) == "ctl2"
    found = sources.discover(_opts(tmp_path, seed=seeds / "configdrive.iso"), "configdrive")
    assert _name_of(found) == "ctl2"


def test_metadata_service_openstack_path(seeds):
    with MetadataServer((seeds / "nocloud/user-data").read_text()) as server:
        found = sources.discover(_opts(Path("/nonexistent"), metadata_url=server.url), "http")
    assert found.source == "http" and found.where.endswith("/openstack/latest/user_data")
    assert _name_of(found) == "ctl2"


def test_metadata_service_ec2_path_when_openstack_path_is_missing(seeds):
    with MetadataServer((seeds / "nocloud/user-data").read_text(), ec2_only=True) as server:
        found = metadata_http.read(server.url, backoff=0)
    assert found.where.endswith("/latest/user-data") and _name_of(found) == "ctl2"


def test_metadata_service_retries_server_errors(seeds):
    with MetadataServer((seeds / "nocloud/user-data").read_text(), fail_first=2) as server:
        found = metadata_http.read(server.url, attempts=3, backoff=0.01)
        assert server.requests.count("/openstack/latest/user_data") == 3
    assert _name_of(found) == "ctl2"


def test_metadata_service_without_user_data_gives_nothing():
    with MetadataServer(None) as server:
        assert metadata_http.read(server.url, backoff=0) is None
        assert "/latest/user-data" in server.requests


def test_no_metadata_service_falls_through_quickly():
    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert metadata_http.read(f"http://127.0.0.1:{port}", attempts=2, backoff=0.01) is None


def test_a_metadata_service_that_trickles_is_given_up_on_within_the_attempt_deadline(seeds):
    """One byte every 50 ms never trips the 30 s read timeout; each attempt still ends at its deadline."""
    with MetadataServer((seeds / "nocloud/user-data").read_text(), trickle=0.05) as server:
        started = time.monotonic()
        with pytest.raises(SourceError, match=r"gave no whole answer within 0.5s in 2 attempts"):
            metadata_http.read(server.url, attempts=2, backoff=0, read_timeout=30, attempt_seconds=0.5)
        took = time.monotonic() - started
        assert server.requests.count("/openstack/latest/user_data") == 2
    assert took < 20, took  # the whole body would take minutes at this pace


def test_a_metadata_answer_larger_than_any_document_is_refused(seeds):
    big = MetadataServer((seeds / "nocloud/user-data").read_text(), padding=document.MAX_BYTES)
    with big as server, pytest.raises(SourceError, match=f"sent more than {document.MAX_BYTES} bytes"):
        metadata_http.read(server.url, backoff=0)


def test_cloud_init_user_data_and_local_file(tmp_path, seeds, node_doc):
    root = tmp_path / "root"
    ud = root / "var/lib/cloud/instance/user-data.txt"
    ud.parent.mkdir(parents=True)
    ud.write_bytes((seeds / "nocloud/user-data").read_bytes())
    assert sources.discover(_opts(root)).source == "cloud-init"
    ud.unlink()
    local = root / "etc/goldstack/node.yaml"
    local.parent.mkdir(parents=True)
    local.write_text(yaml.safe_dump(node_doc))
    found = sources.discover(_opts(root))
    assert found.source == "file" and _name_of(found) == "ctl2"


def test_precedence_nocloud_before_file(tmp_path, seeds, doc_of):
    root = tmp_path / "root"
    _place(seeds / "nocloud", root, "var/lib/cloud/seed/nocloud")
    local = root / "etc/goldstack/node.yaml"
    local.parent.mkdir(parents=True)
    local.write_text(yaml.safe_dump(doc_of("ctl3")))
    assert _name_of(sources.discover(_opts(root))) == "ctl2"
    assert _name_of(sources.discover(_opts(root), "file")) == "ctl3"


def test_mime_multipart_user_data(tmp_path, seeds):
    message = MIMEMultipart()
    message.attach(MIMEText("#!/bin/sh\necho hello\n", "x-shellscript"))
    message.attach(MIMEText((seeds / "nocloud/user-data").read_text(), "cloud-config"))
    directory = tmp_path / "nc"
    directory.mkdir()
    (directory / "meta-data").write_text("instance-id: x\n")
    (directory / "user-data").write_text(message.as_string())
    assert _name_of(sources.discover(_opts(tmp_path, seed=directory), "nocloud")) == "ctl2"


def test_nothing_anywhere_says_what_was_tried(tmp_path):
    with pytest.raises(NoMetadata, match=r"tried: cloud-init, nocloud, configdrive, http, file"):
        sources.discover(_opts(tmp_path))
