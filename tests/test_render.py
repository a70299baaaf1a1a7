"""The whole tree renders for every role, parses, merges overrides, and is written atomically."""

from __future__ import annotations

import configparser
import os
import pwd
import shlex
from pathlib import Path

import pytest

from firstboot import catalog, document, files, render
from firstboot.errors import GoldstackError

FACTS = render.Facts(management_interface="eth0", virt_type="qemu")


def tree_of(doc_dict) -> dict[str, render.RenderedFile]:
    return render.render_tree(document.validate(doc_dict), FACTS)


def ini(rendered: render.RenderedFile) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(rendered.content.decode())
    return parser


@pytest.mark.parametrize("name", ["ctl1", "cmp1", "sto1"])
def test_every_file_of_every_role_renders_and_parses(doc_of, name):
    doc = document.validate(doc_of(name))
    tree = render.render_tree(doc, FACTS)
    expected = {f.path for f in catalog.files_for(doc.role, doc.features)}
    assert set(tree) == expected and tree
    for path, f in tree.items():
        assert b"{{" not in f.content and b"{%" not in f.content, path
        if f.service != "openrc" and path.endswith((".conf", ".ini")) and f.content.lstrip().startswith(b"["):
            ini(f)  # raises on a syntax error


def test_controller_tree_has_every_service(doc_of):
    tree = tree_of(doc_of("ctl1"))
    for path in ("/etc/keystone/keystone.conf", "/etc/glance/glance-api.conf", "/etc/placement/placement.conf",
                 "/etc/nova/nova.conf", "/etc/neutron/neutron.conf", "/etc/neutron/plugins/ml2/ml2_conf.ini",
                 "/etc/neutron/plugins/ml2/openvswitch_agent.ini", "/etc/neutron/dhcp_agent.ini",
                 "/etc/neutron/metadata_agent.ini", "/etc/neutron/l3_agent.ini", "/etc/cinder/cinder.conf",
                 "/etc/openstack-dashboard/local_settings.py", "/etc/mysql/mariadb.conf.d/99-goldstack.cnf",
                 "/etc/rabbitmq/rabbitmq.conf", "/etc/memcached.conf", "/etc/haproxy/haproxy.cfg",
                 "/etc/keepalived/keepalived.conf", "/etc/chrony/chrony.conf", "/etc/ceph/ceph.conf"):
        assert path in tree, path


def test_quorum_queues_and_every_controller_in_transport_url(doc_of):
    nova = ini(tree_of(doc_of("cmp1"))["/etc/nova/nova.conf"])
    rabbit = nova["oslo_messaging_rabbit"]
    assert rabbit["rabbit_quorum_queue"] == "true" and rabbit["rabbit_transient_quorum_queue"] == "true"
    assert rabbit["use_queue_manager"] == "true"
    url = nova["DEFAULT"]["transport_url"]
    assert all(f"@10.99.0.1{i}:5671" in url for i in (1, 2, 3))
    assert (rabbit["ssl"], rabbit["ssl_ca_file"]) == ("true", catalog.TLS_CA)
    assert nova["libvirt"]["virt_type"] == "qemu"


@pytest.mark.parametrize(("name", "listed"), [("ctl1", ["ctl1"]), ("ctl2", ["ctl1", "ctl2"]),
                                             ("ctl3", ["ctl1", "ctl2", "ctl3"])])
def test_a_blank_rabbitmq_node_discovers_only_the_controllers_before_it(doc_of, name, listed):
    """They run when it starts (the rabbitmq step waits for them); probing a later one cost ctl2 12 s."""
    conf = tree_of(doc_of(name))["/etc/rabbitmq/rabbitmq.conf"].content.decode()
    found = [line.split("= rabbit@")[1] for line in conf.splitlines()
             if line.startswith("cluster_formation.classic_config.nodes.")]
    assert found == listed


def test_only_the_uwsgi_apis_send_rabbitmq_heartbeats_from_a_native_thread(doc_of):
    tree = tree_of(doc_of("ctl1"))
    for name, api in catalog.UWSGI_APIS.items():
        # The file is sourced by sh: what its words say after sh's own splitting is what uwsgi is given.
        daemon_args = tree[f"/etc/default/{api.default_name}"].content.decode().split('DAEMON_ARGS="')[1]
        words = shlex.split(daemon_args.split('"')[0])
        env = words[words.index("--env") + 1]
        assert env == "OS_OSLO_MESSAGING_RABBIT__HEARTBEAT_IN_PTHREAD=true", name
    # The eventlet daemons that read the same files (conductor, scheduler, agents) keep their green heartbeat.
    for path in ("/etc/nova/nova.conf", "/etc/neutron/neutron.conf", "/etc/cinder/cinder.conf"):
        assert "heartbeat_in_pthread" not in ini(tree[path])["oslo_messaging_rabbit"], path


def test_galera_config_lists_all_controllers(doc_of):
    cnf = ini(tree_of(doc_of("ctl2"))["/etc/mysql/mariadb.conf.d/99-goldstack.cnf"])
    galera = cnf["galera"]
    assert galera["wsrep_cluster_address"] == "gcomm://10.99.0.11,10.99.0.12,10.99.0.13"
    assert galera["wsrep_node_address"] == "10.99.0.12"
    assert "pc.recovery=TRUE" in galera["wsrep_provider_options"]
    assert "gcache.recover=yes" in galera["wsrep_provider_options"]


def test_no_keystone_key_is_rendered_they_come_from_galera(doc_of):
    tree = tree_of(doc_of("ctl1"))
    assert not [p for p in tree if p.startswith(("/etc/keystone/fernet-keys", "/etc/keystone/credential-keys"))]
    keystone = ini(tree["/etc/keystone/keystone.conf"])
    assert keystone["fernet_tokens"]["max_active_keys"] == str(catalog.KEY_SETS["fernet"].max_active)
    assert (keystone["token"]["caching"], keystone["token"]["cache_on_issue"]) == ("false", "false")


def test_the_services_caches_leave_an_unreachable_memcached_briefly(doc_of):
    """oslo.cache's 300 s let keystones disagree about where a key lives for five minutes after an outage."""
    tree = tree_of(doc_of("ctl1"))
    for path in ("/etc/keystone/keystone.conf", "/etc/nova/nova.conf"):
        cache = ini(tree[path])["cache"]
        assert (cache["enabled"], cache["memcache_dead_retry"]) == ("true", str(render.CACHE_DEAD_RETRY_S)), path


def test_secret_files_modes_and_groups(doc_of):
    tree = tree_of(doc_of("ctl1"))
    nova = tree["/etc/nova/nova.conf"]
    assert (nova.owner, nova.group, nova.mode) == ("root", "nova", 0o640)
    cookie = tree["/var/lib/rabbitmq/.erlang.cookie"]
    assert (cookie.owner, cookie.mode) == ("rabbitmq", 0o400)
    assert tree[catalog.TLS_KEYS["haproxy"]].mode == 0o600 and tree[catalog.TLS_KEYS["haproxy"]].owner == "root"
    secrets = document.validate(doc_of("ctl1")).secrets
    for path, f in tree.items():
        if secrets["db_nova"].encode() in f.content or secrets["mariadb_sst"].encode() in f.content:
            assert f.mode & 0o007 == 0, f"{path} holds a secret but is world-readable"


def test_overrides_replace_and_add(doc_of):
    data = doc_of("ctl1")
    data["overrides"] = {"nova": {"DEFAULT": {"debug": True, "cpu_allocation_ratio": 4.0},
                                  "quota": {"instances": 50}},
                         "galera": {"mysqld": {"max_connections": 2000}}}
    tree = tree_of(data)
    nova = ini(tree["/etc/nova/nova.conf"])
    assert nova["DEFAULT"]["debug"] == "true"
    assert nova["DEFAULT"]["cpu_allocation_ratio"] == "4.0"
    assert nova["quota"]["instances"] == "50"
    assert tree["/etc/nova/nova.conf"].content.decode().count("debug =") == 1
    assert ini(tree["/etc/mysql/mariadb.conf.d/99-goldstack.cnf"])["mysqld"]["max_connections"] == "2000"


def test_lvm_backend_renders_iscsi_settings(doc_of, inventory, site_secrets):
    data = doc_of("sto1")
    data["options"] = {"cinder_backend": "lvm"}
    tree = tree_of(data)
    cinder = ini(tree["/etc/cinder/cinder.conf"])
    assert cinder["DEFAULT"]["enabled_backends"] == "lvm"
    assert cinder["lvm"]["target_helper"] == "lioadm" and cinder["lvm"]["volume_group"] == "cinder-volumes"
    assert cinder["lvm"]["target_protocol"] == "iscsi"
    assert "/etc/ceph/ceph.client.cinder.keyring" not in tree


def test_missing_value_aborts_before_writing(doc_of):
    doc = document.validate(doc_of("ctl1"))
    broken = {k: v for k, v in doc.secrets.items() if k not in ("db_glance", "erlang_cookie")}
    object.__setattr__(doc, "secrets", broken)  # a document the validator would refuse, to reach the renderer
    with pytest.raises(render.RenderError) as info:
        render.render_tree(doc, FACTS)
    message = str(info.value)
    assert "nothing was written" in message
    assert "glance-api.conf (glance/glance-api.conf.j2): missing value: 'db_glance'" in message
    assert ".erlang.cookie (rabbitmq/erlang.cookie.j2): missing value:" in message


def test_unchanged_files_are_not_rewritten_and_changes_are_reported(doc_of, tmp_path):
    tree = tree_of(doc_of("ctl1"))
    first = files.apply_files(tree.values(), tmp_path, set_owner=False)
    assert len(first.written) == len(tree) and "nova" in first.changed_services
    nova_path = tmp_path / "etc/nova/nova.conf"
    inode = nova_path.stat().st_ino
    assert oct(nova_path.stat().st_mode & 0o777) == oct(0o640)
    second = files.apply_files(tree.values(), tmp_path, set_owner=False)
    assert second.written == [] and second.changed_services == set()
    assert nova_path.stat().st_ino == inode
    data = doc_of("ctl1")
    data["overrides"] = {"glance-api": {"DEFAULT": {"workers": 3}}}
    third = files.apply_files(tree_of(data).values(), tmp_path, set_owner=False)
    assert third.written == ["/etc/glance/glance-api.conf"] and third.changed_services == {"glance"}
    assert nova_path.stat().st_ino == inode
    assert not list(tmp_path.rglob("*.goldstack-tmp"))


def test_mode_drift_is_repaired(doc_of, tmp_path):
    tree = tree_of(doc_of("cmp1"))
    files.apply_files(tree.values(), tmp_path, set_owner=False)
    target = tmp_path / "etc/nova/nova.conf"
    target.chmod(0o644)
    report = files.apply_files(tree.values(), tmp_path, set_owner=False)
    assert report.written == ["/etc/nova/nova.conf"]
    assert target.stat().st_mode & 0o777 == 0o640


@pytest.mark.skipif(os.geteuid() != 0, reason="setting owners needs root")
def test_owners_are_set_and_a_missing_account_writes_nothing(tmp_path):
    nobody = pwd.getpwnam("nobody")
    good = render.RenderedFile("/etc/x/a.conf", b"a\n", "nobody", "root", 0o640, "x")
    files.apply_files([good], tmp_path, set_owner=True)
    st = (tmp_path / "etc/x/a.conf").stat()
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, 0)
    bad = render.RenderedFile("/etc/x/b.conf", b"b\n", "no-such-user-gs", "root", 0o640, "x")
    other = render.RenderedFile("/etc/x/c.conf", b"c\n", "root", "root", 0o640, "x")
    with pytest.raises(GoldstackError, match="no-such-user-gs"):
        files.apply_files([other, bad], tmp_path, set_owner=True)
    assert not (tmp_path / "etc/x/c.conf").exists() and not (tmp_path / "etc/x/b.conf").exists()


def test_atomic_write_leaves_old_content_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "f.conf"
    files.atomic_write(target, b"old\n", 0o644)

    def boom(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        files.atomic_write(target, b"new\n", 0o644)
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.conf"]


def test_haproxy_prefers_one_galera_writer(doc_of):
    cfg = tree_of(doc_of("ctl3"))["/etc/haproxy/haproxy.cfg"].content.decode()
    assert "server ctl1 10.99.0.11:3306 check\n" in cfg
    assert "server ctl2 10.99.0.12:3306 check backup" in cfg
    # ... and stays on the node it moved to when the first comes back (no failback).
    galera = cfg.split("\nlisten galera\n")[1].split("\nlisten ")[0]
    assert "stick-table type ip size 1 nopurge" in galera and "stick on dst" in galera
    for api in catalog.APIS:
        port = catalog.PORTS[api.name]
        # TLS on the VIP and on this node's front, which forwards to the service on loopback.
        assert f"bind 10.99.0.10:{port} transparent ssl crt {catalog.TLS_KEYS['haproxy-vip']}\n" in cfg
        front = cfg.split(f"\nlisten {api.name}-local\n")[1].split("\nlisten ")[0]
        assert f"bind 10.99.0.13:{port} ssl crt {catalog.TLS_KEYS['haproxy']}\n" in front
        assert f"server local 127.0.0.1:{api.local_port}\n" in front
    # A dead controller's servers go down on the first failed connection, not after three health checks; the
    # VIP re-encrypts to each controller, its certificate checked against the site CA and its name.
    listens = [b for b in cfg.split("\nlisten ")[2:] if not b.split("\n")[0].endswith("-local")]
    assert len(listens) == len(catalog.APIS) + 1  # galera and every API
    assert all("observe layer4 error-limit 1 on-error mark-down" in block for block in listens)
    for block in listens[1:]:
        assert f"ssl verify required ca-file {catalog.TLS_CA}" in block
        assert "server ctl2 10.99.0.12:" in block and " check verifyhost ctl2\n" in block
    assert "option redispatch 1\n" in cfg and "timeout connect 2s\n" in cfg


def test_database_and_token_cache_settings_for_openstack(doc_of):
    tree = tree_of(doc_of("ctl1"))
    galera = tree["/etc/mysql/mariadb.conf.d/99-goldstack.cnf"].content.decode()
    assert "innodb_snapshot_isolation = OFF" in galera
    for conf in ("/etc/nova/nova.conf", "/etc/glance/glance-api.conf", "/etc/neutron/neutron.conf"):
        assert "memcache_pool_socket_timeout = 1\n" in tree[conf].content.decode(), conf


def test_horizon_settings_are_python(doc_of):
    text = tree_of(doc_of("ctl1"))["/etc/openstack-dashboard/local_settings.py"].content.decode()
    compile(text, "local_settings.py", "exec")
    assert 'OPENSTACK_KEYSTONE_URL = "https://10.99.0.10:5000/v3"' in text
    assert f'OPENSTACK_SSL_CACERT = "{catalog.TLS_CA}"' in text and "SESSION_COOKIE_SECURE = True" in text


def test_render_cli_preview(doc_of, tmp_path):
    import subprocess
    import sys

    import yaml

    doc_file = tmp_path / "node.yaml"
    doc_file.write_text(yaml.safe_dump(doc_of("sto1")))
    out = tmp_path / "preview"
    proc = subprocess.run([sys.executable, "-m", "firstboot", "render", "--document", str(doc_file),
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "etc/ceph/ceph.conf").is_file()
    assert "0600 root:root" in proc.stdout and Path(out / "etc/cinder/cinder.conf").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("name", ["ctl1", "cmp1", "sto1"])
def test_every_database_connection_gives_up_on_a_silent_server_and_retries_soon(doc_of, name):
    """A connection through a dead HAProxy must end, not hold its worker (and keystone's cache lock) forever;
    one refused (the VIP moving) is tried again within a second, forever, not after oslo.db's 10 s."""
    limit = f"read_timeout={render.DB_IO_TIMEOUT_S}&write_timeout={render.DB_IO_TIMEOUT_S}"
    connections = [(path, section) for path, f in tree_of(doc_of(name)).items()
                   if path.startswith(("/etc/keystone", "/etc/glance", "/etc/placement", "/etc/nova", "/etc/neutron",
                                       "/etc/cinder")) and path.endswith(".conf")
                   for section in ini(f).values() if section.get("connection", "").startswith("mysql")]
    for path, section in connections:
        assert limit in section["connection"], (path, section.name)
        assert f"ssl_ca={catalog.TLS_CA}" in section["connection"], (path, section.name)  # verified TLS
        assert (section.get("max_retries"), section.get("retry_interval")) == ("-1", "1"), (path, section.name)
    assert len(connections) >= {"ctl1": 6, "cmp1": 0, "sto1": 1}[name], connections


def test_keepalived_waits_for_a_holder_only_with_peers(inventory, site_secrets):
    from tests.conftest import make_doc

    three = tree_of(make_doc(inventory, "ctl2", site_secrets))["/etc/keepalived/keepalived.conf"].content.decode()
    assert "state BACKUP" in three and "nopreempt" in three
    assert "10.99.0.11" in three and "10.99.0.13" in three and "unicast_src_ip 10.99.0.12" in three
    inventory["nodes"] = [n for n in inventory["nodes"] if n["name"] not in ("ctl2", "ctl3")]
    alone = tree_of(make_doc(inventory, "ctl1", site_secrets))["/etc/keepalived/keepalived.conf"].content.decode()
    assert "state MASTER" in alone and "nopreempt" not in alone and "unicast" not in alone


@pytest.mark.parametrize("name", ["ctl1", "cmp1", "sto1"])
def test_every_token_cache_is_encrypted_and_every_node_gets_the_site_ca(doc_of, name):
    tree = tree_of(doc_of(name))
    assert tree[catalog.TLS_CA].content.decode() == doc_of(name)["tls"]["ca"]
    caches = [(path, ini(f)["keystone_authtoken"]) for path, f in tree.items()
              if path.endswith(".conf") and b"[keystone_authtoken]" in f.content]
    assert caches
    for path, section in caches:
        assert section["memcache_security_strategy"] == "ENCRYPT", path
        assert len(section["memcache_secret_key"]) >= 32, path


def test_mariadb_serves_and_replicates_only_over_tls(doc_of):
    tree = tree_of(doc_of("ctl2"))
    cnf = tree["/etc/mysql/mariadb.conf.d/99-goldstack.cnf"].content.decode()
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(cnf)
    mysqld, galera = parser["mysqld"], parser["galera"]
    assert mysqld["require_secure_transport"] == "ON"
    assert (mysqld["ssl_ca"], mysqld["ssl_cert"]) == (catalog.TLS_CA, catalog.TLS_CERT)
    key = tree[mysqld["ssl_key"]]
    assert (key.owner, key.mode) == ("mysql", 0o600) and key.content.decode() == doc_of("ctl2")["tls"]["key"]
    for option in ("socket.ssl_ca", "socket.ssl_cert", "socket.ssl_key"):
        assert f"{option}=" in galera["wsrep_provider_options"], option
    assert parser["sst"]["ssl-mode"] == "VERIFY_CA"
