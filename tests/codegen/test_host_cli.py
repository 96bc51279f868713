"""`q35c build --target host --emit so|obj|llvm -o DIR` and `q35c run`: what they write and print, and the bad
input they refuse (exit status 2, one line, nothing written)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from q35c.cli.main import main
from q35c.codegen.host.abi import Entry, Tensor
from q35c.codegen.host.measure import check_memory
from q35c.codegen.host.toolchain import Toolchain
from q35c.util.errors import Q35Error


@pytest.mark.parametrize(("emit", "artifact"), [("obj", "libq35.o"), ("llvm", "libq35.ll")])
def test_emit_obj_and_llvm(host_toolchain: Toolchain, tmp_path: Path, emit: str, artifact: str) -> None:
    out = tmp_path / "lib"
    args = ["build", "tiny", "--target", "host", "--quant", "q3p5:g=32", "--prompt", "2", "--gen", "2"]
    assert main([*args, "--emit", emit, "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([artifact, "libq35.h", "libq35.json"])
    # The header is valid C, and it declares what the object defines.
    subprocess.run([str(host_toolchain.clang), "-fsyntax-only", "-x", "c", str(out / "libq35.h")], check=True)
    if emit == "obj":
        symbols = subprocess.run(["nm", str(out / artifact)], capture_output=True, text=True, check=True).stdout
        assert " T _mlir_ciface_q35_decode_step" in symbols and " T _mlir_ciface_q35_prefill_step" in symbols
    else:
        assert "define void @_mlir_ciface_q35_decode_step(" in (out / artifact).read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "h100-sxm", "-o", "OUT"], "needs --target host and -o DIR"),
        (["--target", "host"], "needs --target host and -o DIR"),
        (["--target", "host", "-o", "OUT", "--seq", "2"], "--seq and --context apply to --emit graph only"),
    ],
)
def test_emit_so_refuses_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "out"
    args = [str(out) if a == "OUT" else a for a in extra]
    assert main(["build", "tiny", "--emit", "so", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("q35c: error: ") and message in err and "Traceback" not in err
    assert not out.exists()


def test_run_prints_measured_beside_predicted(host_toolchain: Toolchain, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "tiny", "--target", "host", "--quant", "q3p5:g=32", "--prompt", "2", "--gen", "3"]
    assert main([*args, "--threads", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "2 thread(s)" in lines[0] and "prompt 2, generate 3" in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[2:4]}
    assert set(rows) == {"decode", "prefill"}
    assert lines[4:] == [  # two threads measured against one thread's model: said under the table
        "predicted: the host model's figures are one thread's; with 2 threads, measured/predicted above 1 is what "
        "the threads gained"
    ]
    for phase, row in rows.items():
        measured, predicted, ratio = (float(v.replace(",", "")) for v in row[1:4])
        assert measured > 0 and predicted > 0
        assert ratio == pytest.approx(measured / predicted, rel=2e-3, abs=2e-3), phase
    assert "3 step(s)" in " ".join(rows["decode"])


def test_run_refuses_other_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "tiny", "--target", "mi300x"]) == 2
    assert "q35c run runs on this machine: --target host" in capsys.readouterr().err


def test_model_larger_than_memory_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import q35c.codegen.host.measure as measure

    weight = Tensor("w_codes", (1024, 1024), "i32", "w", "codes")
    entry = Entry("q35_decode_step", "decode", "step", "main", (Tensor("ids", (1,), "i32"), weight), ())
    monkeypatch.setattr(measure, "available_memory", lambda: 1_000_000)
    with pytest.raises(
        Q35Error, match=r"needs 0\.00 GB of memory for its weights \(and caches\); this machine has 0\.00 GB"
    ):
        check_memory({"q35_decode_step": entry}, "big")
    monkeypatch.setattr(measure, "available_memory", lambda: 10_000_000)
    assert check_memory({"q35_decode_step": entry}, "big") == 4 * 1024 * 1024 + 4


def test_missing_tools_name_their_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    import q35c.codegen.host.toolchain as toolchain

    real = toolchain.find_tool
    monkeypatch.setattr(toolchain, "find_tool", lambda name: None if name == "clang-22" else real(name))
    with pytest.raises(Q35Error, match=r"clang-22 not found .*; install Debian's clang-22$"):
        toolchain.find_toolchain()
    monkeypatch.setattr(toolchain, "find_tool", lambda name: None)
    with pytest.raises(Q35Error, match=r"install Debian's clang-22 and mlir-22-tools$"):
        toolchain.find_toolchain()
    monkeypatch.setattr(toolchain, "find_tool", lambda name: toolchain.Path("/usr/bin/true"))
    monkeypatch.setattr(toolchain, "find_openmp", lambda: None)
    with pytest.raises(Q35Error, match=r"libomp.so not found .*; install Debian's libomp-22-dev$"):
        toolchain.find_toolchain(need_openmp=True)


def test_emit_so_does_not_replace_a_directory_it_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "src"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["build", "tiny", "--target", "host", "--emit", "so", "-o", str(out)]) == 2
    assert "exists and is not a q35c library directory (no libq35.json)" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_run_refuses_a_model_too_large_before_compiling(capsys: pytest.CaptureFixture[str]) -> None:
    # llama-2-70b in q3p5 needs about 32 GB of weights; refused from its graph alone, in well under a second of
    # compiling (nothing is compiled or allocated).
    import q35c.codegen.host.measure as measure

    assert measure.available_memory() is not None
    if measure.available_memory() > 40e9:  # type: ignore[operator]
        pytest.skip("this machine has the memory for llama-2-70b")
    assert main(["run", "llama-2-70b", "--quant", "q3p5", "--prompt", "1", "--gen", "1"]) == 2
    err = capsys.readouterr().err
    assert "llama-2-70b needs" in err and "GB of memory for its weights" in err and "Traceback" not in err
