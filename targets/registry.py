"""The target families: which `Target` subclass models the targets whose spec says `family = "..."`.

Everything a family does differently -- its cost model, its pipeline and tile level, its notes, the figures it
cites -- is in its module (`gpu`, `groq`, `apple`, `host`), a subclass of `targets.target.Target`. Adding a family
is a spec file (`specs/<name>.toml`), a module with its subclass, and a line in `FAMILIES` (or, at run time,
`register`). The spec loader accepts exactly the families registered here.

>>> get_target("groq-lpu").family, type(get_target("h100-sxm")).__name__
('groq', 'GpuTarget')
"""

from __future__ import annotations

from pathlib import Path

from q35c.targets.apple import AppleTarget
from q35c.targets.calibration import efficiency_for
from q35c.targets.gpu import GpuTarget
from q35c.targets.groq import GroqTarget
from q35c.targets.host import HostTarget
from q35c.targets.spec import HardwareSpec, load_spec
from q35c.targets.target import Target
from q35c.util.errors import Q35Error

FAMILIES: dict[str, type[Target]] = {
    "groq": GroqTarget,
    "gpu": GpuTarget,
    "apple": AppleTarget,
    "host": HostTarget,
}


def families() -> tuple[str, ...]:
    """The family names a spec may give, in registration order."""
    return tuple(FAMILIES)


def register(family: str, cls: type[Target]) -> None:
    """Make `family` a valid spec family, modelled by `cls` (a family registered again is replaced)."""
    FAMILIES[family] = cls


def unregister(family: str) -> None:
    """Forget a family added with `register` (tests that add a toy family clean up with this)."""
    FAMILIES.pop(family, None)


def target_for(spec: HardwareSpec) -> Target:
    """The target of a loaded spec: its family's class, with the family's efficiency constants."""
    if spec.family not in FAMILIES:
        raise Q35Error(f"{spec.name}: unknown family {spec.family!r} (expected: {', '.join(FAMILIES)})")
    return FAMILIES[spec.family](spec, efficiency_for(spec.family))


def get_target(name: str, spec_dir: Path | str | None = None) -> Target:
    """The target named `name` (ValueError listing the valid names when there is none)."""
    return target_for(load_spec(name, None if spec_dir is None else Path(spec_dir)))
