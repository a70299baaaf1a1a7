"""The one definition of Goldstack's facts: ports, service units, and every config file per role.

Everything else (templates, HAProxy, health checks, the renderer, overrides, docs) reads these tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from firstboot import ini

# The node roles: each is one golden image and one plan of first-boot steps.
CONTROLLER, COMPUTE, STORAGE = "controller", "compute", "storage"
ROLES = (CONTROLLER, COMPUTE, STORAGE)

# Where a node of each role keeps its state: what survives the replacement of its image (volumes in the
# compose lab, disks kept across a re-imaging elsewhere). Everything else comes from the image and the
# node document.
STATE_DIRS: dict[str, tuple[str, ...]] = {
    CONTROLLER: ("/var/lib/mysql", "/var/lib/rabbitmq", "/var/lib/goldstack"),
    COMPUTE: ("/var/lib/nova", "/var/lib/goldstack"),
    STORAGE: ("/var/lib/ceph", "/var/lib/goldstack"),
}

# TCP ports. An API serves plain HTTP on loopback only; HAProxy on each controller serves it over TLS on the
# node's management address (the VIP's backends) and on the VIP (the catalog's endpoints), both on this port.
PORTS: dict[str, int] = {
    "keystone": 5000,
    "glance": 9292,
    "placement": 8778,
    "nova": 8774,
    "nova-metadata": 8775,
    "novncproxy": 6080,
    "neutron": 9696,
    "cinder": 8776,
    "horizon": 443,
    "horizon-local": 80,  # Apache on loopback, behind HAProxy's TLS
    "mysql": 3306,
    "galera": 4567,
    "galera-ist": 4568,
    "galera-sst": 4444,
    "galera-health": 9200,
    "rabbitmq": 5671,  # AMQP over TLS only
    "rabbitmq-dist": 25672,
    "epmd": 4369,
    "rabbitmq-management": 15671,  # HTTPS only
    "memcached": 11211,
    "haproxy-stats": 8404,
    "ceph-mon": 3300,
}


# The site's TLS material on a node (document `tls`): the CA and the node's certificate are public; each
# service that presents the certificate reads its own copy of the key, owned by the service's user.
TLS_CA = "/etc/ssl/goldstack/ca.pem"
TLS_CERT = "/etc/ssl/goldstack/node.pem"
TLS_KEYS: dict[str, str] = {"mariadb": "/etc/mysql/tls/node.key", "rabbitmq": "/etc/rabbitmq/tls/node.key",
                            # HAProxy's, certificate and key in one file: the node's (its TLS fronts) and
                            # what it presents on the VIP (the node's, or the user's API certificate)
                            "haproxy": "/etc/haproxy/tls/node.pem", "haproxy-vip": "/etc/haproxy/tls/vip.pem"}

# Where every API serves plain HTTP: this node only. HAProxy's TLS front on the management address forwards there.
API_LOOPBACK = "127.0.0.1"
# HAProxy's proxy of that front is named after its API with this suffix (`keystone-local`); the VIP's is the
# API's own name.
LOCAL_FRONT_SUFFIX = "-local"

# The Open vSwitch bridge of the provider (flat/VLAN) network; the network step creates it, the agent maps it.
PROVIDER_BRIDGE = "br-provider"
# The OVSDB manager neutron's OVS agent and nova-compute's os-vif both connect to (the default
# ovsdb_connection of each, tcp:127.0.0.1:6640), as Open vSwitch spells its passive listener.
OVSDB_MANAGER = "ptcp:6640:127.0.0.1"


@dataclass(frozen=True)
class Api:
    """An HTTP API behind HAProxy, with the path its health check requests."""

    name: str
    check_path: str
    catalog_type: str | None  # keystone catalog service type (the service-types authority's); None = not in it
    url_suffix: str = ""
    local: str = ""  # key of PORTS where the service itself listens on loopback; empty = its own port
    aliases: tuple[str, ...] = ()  # older types still in the catalog, for the clients that look for them

    @property
    def catalog_types(self) -> tuple[str, ...]:
        return (self.catalog_type, *self.aliases) if self.catalog_type else ()

    @property
    def local_port(self) -> int:
        return PORTS[self.local or self.name]


APIS: tuple[Api, ...] = (
    Api("keystone", "/v3", "identity", "/v3"),
    Api("glance", "/healthcheck", "image"),
    Api("placement", "/", "placement"),
    Api("nova", "/", "compute", "/v2.1"),
    Api("nova-metadata", "/", None),
    Api("novncproxy", "/vnc_lite.html", None),
    Api("neutron", "/", "network"),
    # block-storage is cinder's official type; nova and older clients look for volumev3.
    Api("cinder", "/", "block-storage", "/v3/%(project_id)s", aliases=("volumev3",)),
    Api("horizon", "/horizon/auth/login/", None, local="horizon-local"),
)


def api(name: str) -> Api:
    return next(a for a in APIS if a.name == name)


@dataclass(frozen=True)
class DatabaseUser:
    """A service's database user: the databases it owns and the site secret holding its password."""

    databases: tuple[str, ...]
    secret: str


DATABASE_USERS: dict[str, DatabaseUser] = {
    "keystone": DatabaseUser(("keystone",), "db_keystone"),
    "glance": DatabaseUser(("glance",), "db_glance"),
    "placement": DatabaseUser(("placement",), "db_placement"),
    "nova": DatabaseUser(("nova_api", "nova", "nova_cell0"), "db_nova"),
    "neutron": DatabaseUser(("neutron",), "db_neutron"),
    "cinder": DatabaseUser(("cinder",), "db_cinder"),
}

# Keystone users of the services -> the site secret holding each one's password; each has
# SERVICE_USER_ROLES on the `service` project.
SERVICE_USERS: dict[str, str] = {
    "glance": "user_glance",
    "placement": "user_placement",
    "nova": "user_nova",
    "neutron": "user_neutron",
    "cinder": "user_cinder",
}
SERVICE_USER_ROLES: tuple[str, ...] = ("admin", "service")

# RabbitMQ's account of the OpenStack services (password: secret rabbitmq_openstack).
RABBITMQ_USER = "openstack"
RABBITMQ_SECRET = "rabbitmq_openstack"

# Daemons the joining steps and the lab's checks find in the APIs' service lists; neutron's agents, nova's
# and cinder's services are listed under the name of their systemd unit.
NOVA_COMPUTE, CINDER_VOLUME = "nova-compute", "cinder-volume"
NOVA_CONTROLLER_DAEMONS = ("nova-conductor", "nova-scheduler")

# Service groups: the systemd units a config change restarts, per role.
UNITS: dict[str, dict[str, tuple[str, ...]]] = {
    "mariadb": {CONTROLLER: ("mariadb",)},
    "galera-health": {CONTROLLER: ("goldstack-galera-health",)},
    "rabbitmq": {CONTROLLER: ("rabbitmq-server",)},
    "memcached": {CONTROLLER: ("memcached",)},
    "haproxy": {CONTROLLER: ("haproxy",)},
    "keepalived": {CONTROLLER: ("keepalived",)},
    "keystone": {CONTROLLER: ("keystone",)},
    # The key sets' follower and the Fernet rotation timer (firstboot.keysets).
    "keys": {CONTROLLER: ("goldstack-keys", "goldstack-keys-rotate.timer")},
    "glance": {CONTROLLER: ("glance-api",)},
    "placement": {CONTROLLER: ("placement-api",)},
    "nova": {
        CONTROLLER: ("nova-api", "nova-api-metadata", *NOVA_CONTROLLER_DAEMONS, "nova-novncproxy"),
        COMPUTE: (NOVA_COMPUTE,),
    },
    "neutron": {CONTROLLER: ("neutron-api", "neutron-rpc-server")},
    "neutron-agents": {
        CONTROLLER: ("neutron-openvswitch-agent", "neutron-dhcp-agent", "neutron-metadata-agent", "neutron-l3-agent"),
        COMPUTE: ("neutron-openvswitch-agent",),
    },
    "cinder": {CONTROLLER: ("cinder-api", "cinder-scheduler"), STORAGE: (CINDER_VOLUME,)},
    "horizon": {CONTROLLER: ("apache2",)},
    "ceph": {STORAGE: ("ceph-mon.target", "ceph-mgr.target", "ceph-osd.target")},
    "openvswitch": {CONTROLLER: ("openvswitch-switch",), COMPUTE: ("openvswitch-switch",)},
    "libvirt": {COMPUTE: ("libvirtd",)},
    "ssh": {COMPUTE: ("ssh",)},
    "chrony": {CONTROLLER: ("chrony",), COMPUTE: ("chrony",), STORAGE: ("chrony",)},
    # The LVM option: restores the LIO iSCSI targets cinder-rtstool saved (volumes exported across reboots).
    "lio-target": {STORAGE: ("rtslib-fb-targetctl",)},
}


@dataclass(frozen=True)
class KeySet:
    """A keystone key repository whose keys live in Galera (firstboot.keysets) and are rotated there."""

    name: str
    secret: str  # the site secret holding the first keys
    repository: str
    max_active: int  # keystone.conf's max_active_keys for this repository
    rotate_hours: float  # the timer rotates it when the last rotation is this old; 0 = on request only


# Fernet: daily, four keys (staged, primary, two secondaries), so a token outlives two rotations (its
# lifetime is an hour). Credentials: on request (`keys rotate credential`), which re-encrypts the stored
# credentials once every controller holds the new key.
KEY_SETS: dict[str, KeySet] = {
    "fernet": KeySet("fernet", "fernet_keys", "/etc/keystone/fernet-keys", 4, 24),
    "credential": KeySet("credential", "credential_keys", "/etc/keystone/credential-keys", 3, 0),
}


@dataclass(frozen=True)
class UwsgiApi:
    """A Debian API service run by uWSGI: its init script reads /etc/default/NAME after building its
    command line, which is where the agent sets the listen address (the package default is every address,
    which would collide with HAProxy on the VIP)."""

    default_name: str  # /etc/default/<default_name>
    port: str  # key of PORTS
    ini: str
    service: str


UWSGI_APIS: dict[str, UwsgiApi] = {
    "keystone": UwsgiApi("keystone", "keystone", "/etc/keystone/keystone-uwsgi.ini", "keystone"),
    "placement": UwsgiApi("placement-api", "placement", "/etc/placement/placement-api-uwsgi.ini", "placement"),
    "nova": UwsgiApi("nova-api", "nova", "/etc/nova/nova-api-uwsgi.ini", "nova"),
    "nova-metadata": UwsgiApi("nova-api-metadata", "nova-metadata", "/etc/nova/nova-api-metadata-uwsgi.ini", "nova"),
    "neutron": UwsgiApi("neutron-server", "neutron", "/etc/neutron/neutron-api-uwsgi.ini", "neutron"),
    "cinder": UwsgiApi("cinder-api", "cinder", "/etc/cinder/cinder-api-uwsgi.ini", "cinder"),
}


@dataclass(frozen=True)
class Listener:
    """A socket a node of `roles` listens on: on which of its addresses, which ports (an inclusive range), by
    which program (the name `ss` shows, at most 15 characters). Anything else listening is a fault."""

    roles: frozenset[str]
    on: str  # "management", "vip", "loopback" or "ceph" (the storage address, else management)
    ports: tuple[int, int]
    program: str
    protocol: str = "tcp"
    always: bool = True  # False: only while something happens (a state transfer, a guest's console)


def _listen(roles: set[str], on: str, port: str | tuple[int, int], program: str, protocol: str = "tcp",
            always: bool = True) -> Listener:
    ports = (PORTS[port], PORTS[port]) if isinstance(port, str) else port
    return Listener(frozenset(roles), on, ports, program, protocol, always)


_UWSGI = "uwsgi_python3"
LISTENERS: tuple[Listener, ...] = (
    # HAProxy: every API over TLS on the VIP and on the node's own address, and MariaDB's writer on the VIP.
    *(_listen({CONTROLLER}, on, a.name, "haproxy") for a in APIS for on in ("vip", "management")),
    _listen({CONTROLLER}, "vip", "mysql", "haproxy"),
    _listen({CONTROLLER}, "management", "haproxy-stats", "haproxy"),
    # The API servers behind it, plain HTTP on loopback.
    *(_listen({CONTROLLER}, "loopback", name, _UWSGI) for name in UWSGI_APIS),
    _listen({CONTROLLER}, "loopback", "glance", "glance-api"),
    _listen({CONTROLLER}, "loopback", "novncproxy", "nova-novncproxy"),
    _listen({CONTROLLER}, "loopback", "horizon-local", "apache2"),
    # Clustering and infrastructure.
    _listen({CONTROLLER}, "management", "mysql", "mariadbd"),
    _listen({CONTROLLER}, "management", "galera", "mariadbd"),
    _listen({CONTROLLER}, "management", "galera-ist", "mariadbd", always=False),
    _listen({CONTROLLER}, "management", "galera-sst", "socat", always=False),
    _listen({CONTROLLER}, "management", "galera-health", "python3"),
    _listen({CONTROLLER}, "management", "rabbitmq", "beam.smp"),
    _listen({CONTROLLER}, "management", "rabbitmq-dist", "beam.smp"),
    _listen({CONTROLLER}, "management", "rabbitmq-management", "beam.smp"),
    _listen({CONTROLLER}, "management", "epmd", "epmd"),
    _listen({CONTROLLER}, "loopback", "epmd", "epmd"),
    _listen({CONTROLLER}, "management", "memcached", "memcached"),
    # Open vSwitch's database and the OVS agent's OpenFlow controller, for local clients only.
    _listen({CONTROLLER, COMPUTE}, "loopback", (6640, 6640), "ovsdb-server"),
    _listen({CONTROLLER, COMPUTE}, "loopback", (6633, 6633), "neutron-openvsw"),
    # Compute: sshd for the peers' live migrations, the guests' VNC consoles and incoming migrations.
    _listen({COMPUTE}, "management", (22, 22), "sshd"),
    _listen({COMPUTE}, "management", (5900, 6899), "qemu-system-x86", always=False),
    _listen({COMPUTE}, "management", (49152, 49215), "qemu-system-x86", always=False),
    # Ceph's monitor (msgr2 only) and its manager and OSDs.
    _listen({STORAGE}, "ceph", "ceph-mon", "ceph-mon"),
    _listen({STORAGE}, "ceph", (6800, 7300), "ceph-mgr"),
    _listen({STORAGE}, "ceph", (6800, 7300), "ceph-osd"),
    # Time: controllers serve it to the other nodes when no upstream server is given; chronyc's local port.
    _listen({CONTROLLER}, "management", (123, 123), "chronyd", "udp", always=False),
    _listen({CONTROLLER, COMPUTE, STORAGE}, "loopback", (323, 323), "chronyd", "udp", always=False),
)


# Features of a site that decide whether a file is rendered (firstboot.document.Document.features).
CEPH, RBD_VOLUMES, LVM_VOLUMES = "ceph", "rbd-volumes", "lvm-volumes"
MAX_CEPH_MONITORS = 3  # an odd quorum that survives one loss without slowing every map update down


def ceph_min_size(size: int) -> int:
    """Replicas that must be up for I/O: a majority of three, else every replica there is."""
    return 2 if size >= 3 else 1


@dataclass(frozen=True)
class ConfigFile:
    path: str
    template: str
    roles: frozenset[str]
    service: str
    owner: str = "root"
    group: str = "root"
    mode: int = 0o644
    override: str | None = None  # name under the document's `overrides:`; INI files only
    when: str = ""  # a feature the site must have (CEPH, RBD_VOLUMES...); empty = always


def _f(path: str, template: str, roles: set[str], service: str, owner: str = "root", group: str = "root",
       mode: int = 0o644, override: str | None = None, when: str = "") -> ConfigFile:
    return ConfigFile(path, template, frozenset(roles), service, owner, group, mode, override, when)


_C, _K, _S, _ALL = {CONTROLLER}, {COMPUTE}, {STORAGE}, {CONTROLLER, COMPUTE, STORAGE}
SECRET = 0o640  # readable by the service's group only
PRIVATE = 0o600

CONFIG_FILES: tuple[ConfigFile, ...] = (
    # --- TLS: every node trusts the site CA; a key copy changes (and restarts its service) with the certificate
    _f(TLS_CA, "tls/pem.j2:trusted", _ALL, "tls"),
    _f(TLS_CERT, "tls/pem.j2:cert", _ALL, "tls"),
    _f(TLS_KEYS["mariadb"], "tls/pem.j2:key", _C, "mariadb", "mysql", "mysql", PRIVATE),
    _f(TLS_KEYS["rabbitmq"], "tls/pem.j2:key", _C, "rabbitmq", "rabbitmq", "rabbitmq", PRIVATE),
    _f(TLS_KEYS["haproxy"], "tls/pem.j2:cert:key", _C, "haproxy", mode=PRIVATE),
    _f(TLS_KEYS["haproxy-vip"], "tls/pem.j2:vip_pair", _C, "haproxy", mode=PRIVATE),
    # --- clustering and infrastructure (controllers)
    _f("/etc/mysql/mariadb.conf.d/99-goldstack.cnf", "mariadb/galera.cnf.j2", _C, "mariadb", "root", "mysql",
       SECRET, "galera"),
    _f("/etc/default/goldstack-galera-health", "mariadb/galera-health.default.j2", _C, "galera-health"),
    _f("/etc/rabbitmq/rabbitmq.conf", "rabbitmq/rabbitmq.conf.j2", _C, "rabbitmq", "root", "rabbitmq", SECRET),
    _f("/etc/rabbitmq/enabled_plugins", "rabbitmq/enabled_plugins.j2", _C, "rabbitmq"),
    _f("/etc/rabbitmq/rabbitmq-env.conf", "rabbitmq/rabbitmq-env.conf.j2", _C, "rabbitmq"),
    _f("/etc/rabbitmq/inter_node_tls.config", "rabbitmq/inter_node_tls.config.j2", _C, "rabbitmq"),
    _f("/etc/systemd/system/epmd.socket.d/60-goldstack.conf", "rabbitmq/epmd.socket.j2", _C, "rabbitmq"),
    _f("/var/lib/rabbitmq/.erlang.cookie", "rabbitmq/erlang.cookie.j2", _C, "rabbitmq", "rabbitmq", "rabbitmq",
       0o400),
    _f("/etc/memcached.conf", "memcached/memcached.conf.j2", _C, "memcached"),
    _f("/etc/haproxy/haproxy.cfg", "haproxy/haproxy.cfg.j2", _C, "haproxy", "root", "haproxy", SECRET),
    _f("/etc/keepalived/keepalived.conf", "keepalived/keepalived.conf.j2", _C, "keepalived", mode=SECRET),
    _f("/etc/chrony/chrony.conf", "chrony/chrony.conf.j2", _ALL, "chrony"),
    _f("/root/admin-openrc", "openstack/admin-openrc.j2", _C, "openrc", mode=PRIVATE),
    _f("/etc/openstack/clouds.yaml", "openstack/clouds.yaml.j2", _C, "openrc", mode=PRIVATE),
    *(_f(f"/etc/default/{api.default_name}", f"uwsgi/default.j2:{name}", _C, api.service)
      for name, api in UWSGI_APIS.items()),
    # --- keystone
    _f("/etc/keystone/keystone.conf", "keystone/keystone.conf.j2", _C, "keystone", "root", "keystone", SECRET,
       "keystone"),
    # --- glance, placement
    _f("/etc/glance/glance-api.conf", "glance/glance-api.conf.j2", _C, "glance", "root", "glance", SECRET,
       "glance-api"),
    _f("/etc/placement/placement.conf", "placement/placement.conf.j2", _C, "placement", "root", "placement",
       SECRET, "placement"),
    # --- nova
    _f("/etc/nova/nova.conf", "nova/nova.conf.j2", _C | _K, "nova", "root", "nova", SECRET, "nova"),
    _f("/etc/default/nova-consoleproxy", "nova/consoleproxy.default.j2", _C, "nova"),
    # --- neutron: ML2/OVS with the userspace datapath (2025.1 removed ML2/Linux bridge; this kernel has no
    #     Open vSwitch module)
    _f("/etc/neutron/neutron.conf", "neutron/neutron.conf.j2", _C | _K, "neutron", "root", "neutron", SECRET,
       "neutron"),
    _f("/etc/neutron/plugins/ml2/ml2_conf.ini", "neutron/ml2_conf.ini.j2", _C, "neutron", "root", "neutron",
       SECRET, "ml2"),
    _f("/etc/neutron/plugins/ml2/openvswitch_agent.ini", "neutron/openvswitch_agent.ini.j2", _C | _K,
       "neutron-agents", "root", "neutron", SECRET, "openvswitch-agent"),
    _f("/etc/neutron/dhcp_agent.ini", "neutron/dhcp_agent.ini.j2", _C, "neutron-agents", "root", "neutron", SECRET,
       "dhcp-agent"),
    _f("/etc/neutron/metadata_agent.ini", "neutron/metadata_agent.ini.j2", _C, "neutron-agents", "root", "neutron",
       SECRET, "metadata-agent"),
    _f("/etc/neutron/l3_agent.ini", "neutron/l3_agent.ini.j2", _C, "neutron-agents", "root", "neutron", SECRET,
       "l3-agent"),
    # --- cinder (api + scheduler on controllers, volume on storage nodes)
    _f("/etc/cinder/cinder.conf", "cinder/cinder.conf.j2", _C | _S, "cinder", "root", "cinder", SECRET, "cinder"),
    # --- horizon
    _f("/etc/openstack-dashboard/local_settings.py", "horizon/local_settings.py.j2", _C, "horizon", "root",
       "www-data", SECRET),
    _f("/etc/apache2/ports.conf", "horizon/ports.conf.j2", _C, "horizon"),
    # The site the package enables (alias-only: /horizon on any virtual host), made to run in one daemon.
    _f("/etc/apache2/sites-available/openstack-dashboard-alias-only.conf", "horizon/apache-site.conf.j2", _C,
       "horizon"),
    # --- ceph (daemons on storage nodes; clients everywhere through librbd)
    _f("/etc/ceph/ceph.conf", "ceph/ceph.conf.j2", _ALL, "ceph", override="ceph", when=CEPH),
    _f("/etc/ceph/ceph.client.admin.keyring", "ceph/keyring.j2:admin", _S, "ceph", mode=PRIVATE,
       when=CEPH),
    _f("/etc/goldstack/ceph/ceph.mon.keyring", "ceph/keyring.j2:mon", _S, "ceph", mode=PRIVATE, when=CEPH),
    _f("/var/lib/ceph/bootstrap-osd/ceph.keyring", "ceph/keyring.j2:bootstrap-osd", _S, "ceph", mode=PRIVATE,
       when=CEPH),
    _f("/etc/ceph/ceph.client.glance.keyring", "ceph/keyring.j2:glance", _C, "glance", "root", "glance", SECRET,
       when=CEPH),
    _f("/etc/ceph/ceph.client.cinder.keyring", "ceph/keyring.j2:cinder", _S, "cinder", "root", "cinder", SECRET,
       when=RBD_VOLUMES),
    _f("/etc/ceph/ceph.client.cinder.keyring", "ceph/keyring.j2:cinder", _K, "nova", "root", "nova", SECRET,
       when=RBD_VOLUMES),
    _f("/etc/ceph/ceph.client.nova.keyring", "ceph/keyring.j2:nova", _K, "nova", "root", "nova", SECRET,
       when=CEPH),
    # --- libvirt
    _f("/etc/libvirt/qemu.conf", "libvirt/qemu.conf.j2", _K, "libvirt", "root", "root", 0o600),
    _f("/etc/default/libvirtd", "libvirt/libvirtd.default.j2", _K, "libvirt"),
    _f("/etc/goldstack/libvirt/cinder-secret.xml", "libvirt/secret.xml.j2", _K, "libvirt", mode=PRIVATE,
       when=RBD_VOLUMES),
    # --- live migration between compute nodes: nova-compute reaches its peers' libvirt over SSH
    _f("/etc/ssh/sshd_config.d/60-goldstack.conf", "ssh/sshd.conf.j2", _K, "ssh"),
    _f("/etc/ssh/goldstack_host_ed25519_key", "ssh/private_key.j2:compute_ssh_host_key", _K, "ssh", mode=PRIVATE),
    # Read at each connection (service group "ssh-keys" has no unit to restart).
    _f("/var/lib/nova/.ssh/id_ed25519", "ssh/private_key.j2:nova_ssh_key", _K, "ssh-keys", "nova", "nova", PRIVATE),
    _f("/var/lib/nova/.ssh/authorized_keys", "ssh/authorized_keys.j2", _K, "ssh-keys", "nova", "nova", PRIVATE),
    _f("/etc/ssh/ssh_known_hosts", "ssh/known_hosts.j2", _K, "ssh-keys"),
    _f("/etc/ssh/ssh_config.d/60-goldstack.conf", "ssh/client.conf.j2", _K, "ssh-keys"),
)


@dataclass(frozen=True)
class Directory:
    """A directory whose owner and mode matter (keys inside): the config step keeps it so."""

    path: str
    roles: frozenset[str]
    owner: str
    group: str
    mode: int


DIRECTORIES: tuple[Directory, ...] = (
    Directory("/etc/keystone/fernet-keys", frozenset(_C), "keystone", "keystone", 0o700),
    Directory("/etc/keystone/credential-keys", frozenset(_C), "keystone", "keystone", 0o700),
    Directory("/var/lib/nova/.ssh", frozenset(_K), "nova", "nova", 0o700),
)


def files_for(role: str, features: frozenset[str] | set[str]) -> list[ConfigFile]:
    """The files a node of `role` gets on a site with these features."""
    return [f for f in CONFIG_FILES if role in f.roles and (not f.when or f.when in features)]


# Override targets whose file is not read by oslo.config (firstboot.ini encodes for that reader only).
OVERRIDE_READERS: dict[str, str] = {"galera": ini.MARIADB, "ceph": ini.CEPH}


def override_reader(target: str) -> str:
    return OVERRIDE_READERS.get(target, ini.OSLO)


def override_targets(role: str, features: frozenset[str] | None = None) -> set[str]:
    """The files a node of `role` may override; with the site's `features`, only those it renders."""
    return {f.override for f in CONFIG_FILES if role in f.roles and f.override
            and (features is None or not f.when or f.when in features)}


def units_of(service: str, role: str) -> tuple[str, ...]:
    return UNITS.get(service, {}).get(role, ())


@dataclass(frozen=True)
class CephEntity:
    """A CephX identity: the secret holding its key and the capabilities the monitors grant it."""

    entity: str
    secret: str
    caps: tuple[tuple[str, str], ...]


_RBD_CLIENT_MON = ("mon", "profile rbd")
CEPH_ENTITIES: dict[str, CephEntity] = {
    "mon": CephEntity("mon.", "ceph_mon_key", (("mon", "allow *"),)),
    "admin": CephEntity("client.admin", "ceph_admin_key",
                        (("mds", "allow *"), ("mgr", "allow *"), ("mon", "allow *"), ("osd", "allow *"))),
    "bootstrap-osd": CephEntity("client.bootstrap-osd", "ceph_bootstrap_osd_key",
                                (("mgr", "allow r"), ("mon", "profile bootstrap-osd"))),
    "glance": CephEntity("client.glance", "ceph_glance_key",
                         (("mgr", "profile rbd pool=images"), _RBD_CLIENT_MON, ("osd", "profile rbd pool=images"))),
    "cinder": CephEntity("client.cinder", "ceph_cinder_key",
                         (("mgr", "profile rbd pool=volumes, profile rbd pool=vms"), _RBD_CLIENT_MON,
                          ("osd", "profile rbd pool=volumes, profile rbd pool=vms, "
                                  "profile rbd-read-only pool=images"))),
    "nova": CephEntity("client.nova", "ceph_nova_key",
                       (("mgr", "profile rbd pool=vms"), _RBD_CLIENT_MON,
                        ("osd", "profile rbd pool=vms, profile rbd-read-only pool=images"))),
}
CEPH_POOLS: tuple[str, ...] = ("volumes", "images", "vms")
