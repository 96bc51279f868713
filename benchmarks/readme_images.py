"""The README's pictures: the plots of a real report, copied into docs/images/.

    python benchmarks/readme_images.py

Builds the report of `q35c build llama-2-70b --quant q3p5 --target <every target but host>` in a temporary
directory (the host target is measured on the machine that runs it, so it is left out of pictures that are
checked in) and copies its plots to docs/images/llama-2-70b-q3p5-<plot>.png.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from q35c.report.directory import Request, build_report
from q35c.report.plots import PLOTS
from q35c.targets.spec import spec_names

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
MODEL, SCHEME = "llama-2-70b", "q3p5"


def main() -> int:
    targets = ",".join(name for name in spec_names() if name != "host")
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report"
        build_report(Request(MODEL, SCHEME, targets), out)
        for name in PLOTS:
            target = IMAGES / f"{MODEL}-{SCHEME}-{name}.png"
            shutil.copyfile(out / f"{name}.png", target)
            print(f"wrote {target.relative_to(IMAGES.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
