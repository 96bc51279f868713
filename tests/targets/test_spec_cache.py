"""A spec read before is read again when its file, the shared tables beside it or the families change."""

from __future__ import annotations

import shutil
from pathlib import Path

from q35c.targets.registry import register, unregister
from q35c.targets.spec import SPEC_DIR, load_spec
from q35c.targets.target import Target


def _copy_specs(directory: Path) -> Path:
    directory.mkdir()
    for name in ("a100-sxm.toml", "_horowitz-45nm.toml"):
        shutil.copy(SPEC_DIR / name, directory / name)
    return directory


def test_an_unchanged_spec_is_read_once(tmp_path: Path) -> None:
    specs = _copy_specs(tmp_path / "specs")
    assert load_spec("a100-sxm", specs) is load_spec("a100-sxm", specs)


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    specs = _copy_specs(tmp_path / "specs")
    path = specs / "a100-sxm.toml"
    before = load_spec("a100-sxm", specs)
    path.write_text(path.read_text().replace("value = 2.039e12", "value = 1.5e12", 1))
    after = load_spec("a100-sxm", specs)
    assert before.main_memory.bandwidth_bytes_per_s == 2.039e12
    assert after.main_memory.bandwidth_bytes_per_s == 1.5e12


def test_a_changed_shared_table_is_read_again(tmp_path: Path) -> None:
    specs = _copy_specs(tmp_path / "specs")
    shared = specs / "_horowitz-45nm.toml"
    before = load_spec("a100-sxm", specs)
    shared.write_text(shared.read_text() + "\n# edited\n")
    assert load_spec("a100-sxm", specs) is not before


def test_the_families_registered_are_part_of_what_a_spec_is_read_with(tmp_path: Path) -> None:
    specs = _copy_specs(tmp_path / "specs")
    before = load_spec("a100-sxm", specs)
    register("toy-cache-family", Target)
    try:
        assert load_spec("a100-sxm", specs) is not before
    finally:
        unregister("toy-cache-family")
    assert load_spec("a100-sxm", specs) is before


def test_a_spec_with_measured_values_is_read_each_time(tmp_path: Path) -> None:
    # The host's spec takes quantities from the machine (`from = "probe:..."`, `"os:..."`), measured as read.
    specs = _copy_specs(tmp_path / "specs")
    path = specs / "a100-sxm.toml"
    path.write_text(path.read_text() + '\n# a measured quantity would say: from = "probe:stream_triad"\n')
    assert load_spec("a100-sxm", specs) is not load_spec("a100-sxm", specs)
    assert b"probe:" in (SPEC_DIR / "host.toml").read_bytes()  # so the host's spec is never kept
