"""lit configuration for the IR-in, IR-out tests under tests/filecheck (run from pytest by test_filecheck.py)."""

import os

import lit.formats

config.name = "q35c"  # noqa: F821
config.test_format = lit.formats.ShTest(preamble_commands=[])  # noqa: F821
config.suffixes = [".mlir"]  # noqa: F821
config.test_source_root = os.path.dirname(__file__)  # noqa: F821
config.excludes = ["lit.cfg.py"]  # noqa: F821

# Real MLIR tools are found on PATH or in Debian's llvm-22 directory.
llvm_bin = "/usr/lib/llvm-22/bin"
paths = [os.path.dirname(os.path.abspath(os.sys.executable)), os.environ.get("PATH", "")]
if os.path.isdir(llvm_bin):
    paths.append(llvm_bin)
config.environment["PATH"] = os.pathsep.join(paths)  # noqa: F821
if shutil_which := __import__("shutil").which("mlir-opt", path=config.environment["PATH"]):  # noqa: F821
    config.available_features.add("mlir")  # noqa: F821
