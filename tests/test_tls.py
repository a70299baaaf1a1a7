"""The site CA and the node certificates: made by seed, kept across runs, checked wherever a document is read."""

from __future__ import annotations

import datetime

import pytest
import yaml
from cryptography import x509

from firstboot import document, tls
from firstboot.errors import InvalidInput
from tests.test_seed import run_seed


def _problems(doc: dict) -> dict[str, str]:
    try:
        document.validate(doc, "doc")
    except InvalidInput as exc:
        return {p.field: p.message for p in exc.problems}
    return {}


def test_seed_makes_a_ca_and_a_certificate_per_node_naming_it(tmp_path, inventory_file):
    secrets_file = tmp_path / "s.yaml"
    result = run_seed(str(inventory_file), "--out", str(tmp_path / "o"), "--secrets", str(secrets_file))
    assert result.returncode == 0, result.stderr
    assert "certificates issued by the site CA: ctl1, ctl2, ctl3, cmp1, sto1" in result.stdout
    kept = yaml.safe_load(secrets_file.read_text())
    ca_key = kept["site_ca"]["key"]
    for name in ("ctl1", "cmp1", "sto1"):
        text = (tmp_path / "o" / name / "node.yaml").read_text()
        assert ca_key.splitlines()[1] not in text, f"the CA key reached {name}"
        doc = document.load_text(text, name)
        assert doc.tls.ca == kept["site_ca"]["cert"]
        cert = x509.load_pem_x509_certificate(doc.tls.cert.encode())
        names = tls.cert_names(cert)
        assert {name, doc.node.management} <= names
        assert ("10.99.0.10" in names) == (doc.role == "controller")  # the VIP: controllers only
        assert "site_ca" not in doc.secrets and "node_certificates" not in doc.secrets


def test_a_rerun_keeps_every_certificate_and_a_changed_node_alone_gets_a_new_one(tmp_path, inventory,
                                                                                inventory_file):
    secrets_file = tmp_path / "s.yaml"
    assert run_seed(str(inventory_file), "--out", str(tmp_path / "a"), "--secrets", str(secrets_file)).returncode == 0
    first = yaml.safe_load(secrets_file.read_text())["node_certificates"]
    again = run_seed(str(inventory_file), "--out", str(tmp_path / "b"), "--secrets", str(secrets_file))
    assert again.returncode == 0 and "certificates issued" not in again.stdout
    assert yaml.safe_load(secrets_file.read_text())["node_certificates"] == first
    inventory["nodes"][3]["addresses"]["management"] = "10.99.0.22"
    inventory_file.write_text(yaml.safe_dump(inventory))
    moved = run_seed(str(inventory_file), "--out", str(tmp_path / "c"), "--secrets", str(secrets_file))
    assert moved.returncode == 0 and "certificates issued by the site CA: cmp1\n" in moved.stdout
    now = yaml.safe_load(secrets_file.read_text())["node_certificates"]
    assert now["cmp1"] != first["cmp1"] and all(now[n] == first[n] for n in first if n != "cmp1")


def test_a_document_is_refused_for_an_expired_certificate(doc_of):
    doc = doc_of("ctl1")
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=tls.NODE_DAYS + 1)
    problems = dict(tls.check_node(doc["tls"], set(), now=later))
    assert "expired on" in problems["tls.cert"] and "re-run seed" in problems["tls.cert"]


def test_a_key_of_another_node_is_refused(doc_of):
    doc = doc_of("ctl1")
    doc["tls"]["key"] = doc_of("ctl2")["tls"]["key"]
    assert "does not belong to the certificate" in _problems(doc)["tls.key"]


def test_a_certificate_another_ca_signed_is_refused(doc_of):
    doc = doc_of("cmp1")
    doc["tls"]["ca"] = tls.make_ca("other")["cert"]
    assert "was not signed by the CA in tls.ca" in _problems(doc)["tls.cert"]


def test_a_certificate_that_does_not_name_the_node_is_refused(doc_of):
    doc = doc_of("ctl1")
    other = doc_of("ctl2")
    doc["tls"]["cert"], doc["tls"]["key"] = other["tls"]["cert"], other["tls"]["key"]
    message = _problems(doc)["tls.cert"]
    assert "does not name 10.99.0.11, ctl1" in message


@pytest.mark.parametrize("broken", [{"ca": "x", "cert": "y", "key": "z"}, "pem", {}])
def test_malformed_tls_is_refused_by_field(doc_of, broken):
    doc = doc_of("sto1")
    doc["tls"] = broken
    assert any(f.startswith("tls") for f in _problems(doc))


def test_a_document_without_tls_is_refused(doc_of):
    doc = doc_of("sto1")
    del doc["tls"]
    assert _problems(doc)["(document).tls"] == "is missing"


def test_a_node_document_never_carries_the_site_ca(doc_of, site_secrets):
    doc = doc_of("ctl1")
    doc["secrets"]["site_ca"] = site_secrets["site_ca"]
    assert "secrets.site_ca" in _problems(doc)


def test_your_own_ca_signs_the_node_certificates(tmp_path, inventory, inventory_file):
    own = tls.make_ca("own")
    (tmp_path / "ca.pem").write_text(own["cert"])
    (tmp_path / "ca.key").write_text(own["key"])
    inventory["tls"] = {"ca_cert": "ca.pem", "ca_key": "ca.key"}
    inventory_file.write_text(yaml.safe_dump(inventory))
    secrets_file = tmp_path / "s.yaml"
    result = run_seed(str(inventory_file), "--out", str(tmp_path / "o"), "--secrets", str(secrets_file))
    assert result.returncode == 0, result.stderr
    assert "certificates issued by your CA" in result.stdout
    doc = document.load_text((tmp_path / "o/ctl2/node.yaml").read_text(), "ctl2")
    assert doc.tls.ca == own["cert"]
    assert own["key"].splitlines()[1] not in secrets_file.read_text()  # the user's CA key is not copied


def test_a_bad_ca_of_your_own_is_refused_and_nothing_written(tmp_path, inventory, inventory_file):
    own, other = tls.make_ca("own"), tls.make_ca("other")
    (tmp_path / "ca.pem").write_text(own["cert"])
    (tmp_path / "ca.key").write_text(other["key"])
    inventory["tls"] = {"ca_cert": "ca.pem", "ca_key": "ca.key"}
    inventory_file.write_text(yaml.safe_dump(inventory))
    result = run_seed(str(inventory_file), "--out", str(tmp_path / "o"), "--secrets", str(tmp_path / "s.yaml"))
    assert result.returncode == 3
    assert "tls.ca_key" in result.stderr and "does not belong to the certificate" in result.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "s.yaml").exists()
    inventory["tls"] = {"ca_cert": "missing.pem", "ca_key": "ca.key"}
    inventory_file.write_text(yaml.safe_dump(inventory))
    result = run_seed(str(inventory_file), "--out", str(tmp_path / "o"), "--secrets", str(tmp_path / "s.yaml"))
    assert result.returncode == 3 and "tls.ca_cert" in result.stderr and "cannot be read" in result.stderr


def test_node_certificates_outliving_their_renewal_window_are_kept():
    ca = tls.make_ca("t")
    pair = tls.issue(ca, "n1", ["n1", "10.0.0.1"])
    assert tls.still_good(pair, ca, {"n1", "10.0.0.1"})
    assert not tls.still_good(pair, ca, {"n1", "10.0.0.2"})
    assert not tls.still_good(pair, tls.make_ca("u"), {"n1", "10.0.0.1"})
    assert tls.days_left(pair["cert"]) > tls.NODE_DAYS - 1


def test_status_warns_of_a_certificate_near_its_end(tmp_path, monkeypatch):
    from firstboot import catalog, status
    from firstboot.files import under_root
    from firstboot.state import StateStore

    state = StateStore(tmp_path / "state.json")
    ca = tls.make_ca("t")
    cert = under_root(tmp_path, catalog.TLS_CERT)
    cert.parent.mkdir(parents=True)
    cert.write_text(tls.issue(ca, "n1", ["n1"])["cert"])
    assert "warning" not in status.as_table(state, tmp_path)
    assert "certificate /etc/ssl/goldstack/node.pem: valid until" in status.as_table(state, tmp_path)
    monkeypatch.setattr(tls, "NODE_DAYS", 12)
    cert.write_text(tls.issue(ca, "n1", ["n1"])["cert"])
    table = status.as_table(state, tmp_path)
    assert "warning: certificate /etc/ssl/goldstack/node.pem" in table and "(12 days)" in table
    assert "re-run seed" in table
    report = yaml.safe_load(status.as_json(state, tmp_path))["certificate"]
    assert report["renew"] is True and 11 < report["days_left"] <= 12


def own_api_certificate(tmp_path, inventory, inventory_file, name: str, address: str) -> tuple[dict, dict]:
    """An API certificate of a CA of the user's own, for `name` and `address`, named in the inventory's tls."""
    public = tls.make_ca("public")
    api = tls.issue(public, name, [address])
    for file, text in (("api.pem", api["cert"]), ("api.key", api["key"]), ("public-ca.pem", public["cert"])):
        (tmp_path / file).write_text(text)
    inventory["tls"] = {"api_cert": "api.pem", "api_key": "api.key", "api_ca": "public-ca.pem"}
    inventory_file.write_text(yaml.safe_dump(inventory))
    return public, api


def test_your_own_api_certificate_is_presented_on_the_vip_and_trusted_everywhere(tmp_path, inventory,
                                                                                   inventory_file):
    from firstboot import catalog, render

    public, api = own_api_certificate(tmp_path, inventory, inventory_file, "api.example.net", "10.99.0.10")
    result = run_seed(str(inventory_file), "--out", str(tmp_path / "o"), "--secrets", str(tmp_path / "s.yaml"))
    assert result.returncode == 0, result.stderr
    controller = document.load_text((tmp_path / "o/ctl1/node.yaml").read_text(), "ctl1")
    compute = document.load_text((tmp_path / "o/cmp1/node.yaml").read_text(), "cmp1")
    assert controller.tls.api_cert == api["cert"] and compute.tls.api_cert == ""  # only controllers present it
    assert api["key"] not in (tmp_path / "o/cmp1/node.yaml").read_text()
    tree = render.render_tree(controller)
    assert tree[catalog.TLS_KEYS["haproxy-vip"]].content.decode() == api["cert"] + api["key"]
    assert tree[catalog.TLS_KEYS["haproxy"]].content.decode() == controller.tls.cert + controller.tls.key
    bundle = render.render_tree(compute)[catalog.TLS_CA].content.decode()
    assert bundle == compute.tls.ca + public["cert"]  # every client trusts the site CA and the API's issuer


def test_an_api_certificate_that_does_not_name_the_vip_is_refused(tmp_path, inventory, inventory_file):
    own_api_certificate(tmp_path, inventory, inventory_file, "elsewhere.example.net", "192.0.2.1")
    result = run_seed(str(inventory_file), "--out", str(tmp_path / "o"), "--secrets", str(tmp_path / "s.yaml"))
    assert result.returncode == 3 and "tls.api_cert" in result.stderr and "does not name 10.99.0.10" in result.stderr
    assert not (tmp_path / "o").exists()
    inventory["tls"] = {"api_cert": "api.pem"}
    inventory_file.write_text(yaml.safe_dump(inventory))
    result = run_seed(str(inventory_file), "--out", str(tmp_path / "o"), "--secrets", str(tmp_path / "s.yaml"))
    assert result.returncode == 3 and "tls.api_cert: needs api_key and api_ca too" in result.stderr


def test_a_compute_node_is_never_given_the_api_key(doc_of):
    public = tls.make_ca("public")
    api = tls.issue(public, "api", ["10.99.0.10"])
    doc = doc_of("cmp1")
    doc["tls"] |= {"api_ca": public["cert"], "api_cert": api["cert"], "api_key": api["key"]}
    assert "is for controllers" in _problems(doc)["tls.api_cert"]
    doc = doc_of("ctl1")
    doc["tls"] |= {"api_cert": api["cert"], "api_key": api["key"]}
    assert "is missing" in _problems(doc)["tls.api_ca"]
