"""The key sets' rotation rule and repository writes (the database side runs in the lab test)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from firstboot import catalog, keysets

FERNET = catalog.KEY_SETS["fernet"]


def repository_order(keys: dict[int, str]) -> MultiFernet:
    """What keystone builds from a repository: the primary (highest index) first, then the rest."""
    return MultiFernet([Fernet(keys[i]) for i in sorted(keys, reverse=True)])


def test_rotation_promotes_the_staged_key_and_stages_a_fresh_one():
    first = keysets.initial(["staged", "primary"])
    assert first == {0: "staged", 1: "primary"}
    once = keysets.rotated(first, 4, "fresh")
    assert once == {0: "fresh", 1: "primary", 2: "staged"}  # the staged key signs from now on


def test_a_token_outlives_two_rotations_and_not_a_third():
    keys = keysets.initial([keysets.new_key(), keysets.new_key()])
    token = repository_order(keys).encrypt(b"payload")  # issued with the current primary
    for _ in range(2):
        keys = keysets.rotated(keys, FERNET.max_active, keysets.new_key())
        assert repository_order(keys).decrypt(token) == b"payload"
        assert len(keys) <= FERNET.max_active
    keys = keysets.rotated(keys, FERNET.max_active, keysets.new_key())
    with pytest.raises(InvalidToken):
        repository_order(keys).decrypt(token)
    assert sorted(keys) == [0, 2, 3, 4]  # the staged key, the primary and two secondaries


def test_the_repository_holds_exactly_the_set(tmp_path):
    keys = {0: keysets.new_key(), 1: keysets.new_key()}
    assert keysets.write_repository(FERNET, keys, tmp_path, owned=False)
    repo = tmp_path / FERNET.repository.lstrip("/")
    (repo / "notes").write_text("not a key: left alone")
    assert not keysets.write_repository(FERNET, keys, tmp_path, owned=False)  # nothing to change
    newer = keysets.rotated(keys, FERNET.max_active, keysets.new_key())
    assert keysets.write_repository(FERNET, newer, tmp_path, owned=False)
    assert {p.name: p.read_text() for p in repo.iterdir() if p.name.isdigit()} == {str(i): k for i, k in newer.items()}
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in repo.iterdir() if p.name.isdigit())
    assert (repo / "notes").exists()
