"""Seeded fuzzing of every ``xmkd`` subcommand's options, parsing only (nothing is run).

Every option that takes a value is found by walking the real parser; its argparse ``type`` says
what it accepts (``xmkd.commands._args`` records the kind and bounds on each type), and values
are generated on both sides of each bound: every bad value must end in SystemExit(2) with one
line on stderr that names the option, never a traceback, and every good value must parse.
XMKD_FUZZ_SEEDS=N widens the run (default 3 seeds).
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from xmkd.cli import build_parser

SEEDS = range(int(os.environ.get("XMKD_FUZZ_SEEDS", "3")))

#: good values that the generic rule would get wrong because a cross-option check applies
#: (the dynamo exporter, the default, writes opset 18 and newer)
GOOD_OVERRIDES = {("export", "--opset"): ["18", "20", "23"]}


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fuzzcli")
    (root / "dir").mkdir()
    (root / "file.pt").write_bytes(b"x")
    (root / "clip.mkv").write_bytes(b"x")
    return {
        "root": str(root),
        "dir": str(root / "dir"),
        "file": str(root / "file.pt"),
        "mkv": str(root / "clip.mkv"),
        "missing": str(root / "missing"),
        "under_file": str(root / "file.pt" / "sub"),
    }


def commands(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    """(argv prefix, parser) of every subcommand that runs something, nested ones included."""
    stack: list[tuple[list[str], argparse.ArgumentParser]] = [([], parser)]
    while stack:
        prefix, p = stack.pop()
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        for action in subs:
            for name, sub in action.choices.items():
                stack.append((prefix + [name], sub))
        if prefix and not any(sub.choices for sub in subs):
            yield prefix, p


def value_actions(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in p._actions
        if a.nargs != 0 and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
    ]


def kind_of(action: argparse.Action) -> tuple[str, dict[str, Any]]:
    if action.choices is not None:
        return "choices", {"choices": list(action.choices)}
    kind = getattr(action.type, "xmkd_kind", None)
    return (kind or "unchecked"), dict(getattr(action.type, "xmkd_bounds", {}))


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def values(kind: str, b: dict[str, Any], f: dict[str, str], rng: random.Random):
    """(bad, good) values of one option kind; the random ones are drawn from ``rng``."""
    junk = "".join(rng.choice("abc%$#:;,. é") for _ in range(rng.randint(1, 8)))
    text_bad = ["", "abc", junk, "nan", "inf", "-inf", "1e999"]
    if kind == "int":
        lo, hi = b["lo"], b["hi"]
        bad = text_bad + ["1.5", "0x10", "10**3", str(lo - 1), str(lo - rng.randint(2, 10**9))]
        good = [str(lo), str(rng.randint(lo, hi if hi is not None else lo + 10**6))]
        if hi is not None:
            bad += [str(hi + 1), str(hi + rng.randint(2, 10**12)), "1e30"]
            good.append(str(hi))
        if hi is None or hi >= 1000:
            good.append("1e3")  # a whole number written as a float
        return bad, good
    if kind == "float":
        lo, hi = b["lo"], b["hi"]
        bad = ["", "abc", junk, "nan", "inf", "-inf", "1e999", "1,5"]
        good = []
        if lo is not None:
            bad.append(_num(lo - rng.uniform(1e-3, 1e6)))
            (bad if b["lo_open"] else good).append(_num(lo))
        if hi is not None:
            bad.append(_num(hi + rng.uniform(1e-3, 1e6)))
            (bad if b["hi_open"] else good).append(_num(hi))
        low = lo if lo is not None else -1e6
        high = hi if hi is not None else low + 1e6
        inside = rng.uniform(low, high)
        if (inside == lo and b["lo_open"]) or (inside == hi and b["hi_open"]):
            inside = (low + high) / 2
        good.append(repr(inside))
        return bad, good
    if kind == "int_list":
        return ["", ",", "a,b", "1.5", str(b["lo"] - 1), f"5,{b['lo'] - 1}", junk], ["10", "10,50"]
    if kind == "names":
        known = list(b["known"]())
        pick = rng.sample(known, rng.randint(1, min(3, len(known))))
        return ["", ",", "bogus", f"{known[0]},bogus", junk], [known[0], ",".join(pick)]
    if kind == "choices":
        return ["", "bogus", junk], [rng.choice(b["choices"])]
    if kind == "text_list":  # free names, comma-separated (xmkd label --actions)
        return ["", ",", " , ", "a, a"], ["drink water", "drink water, eat meal/snack"]
    paths_bad = ["", "a\0b"]
    if kind == "existing_file":
        return paths_bad + [f["missing"], f["dir"], f["under_file"], "/proc/none"], [f["file"]]
    if kind == "existing_dir":
        return paths_bad + [f["missing"], f["file"], f["under_file"]], [f["dir"]]
    if kind == "existing_path":
        return paths_bad + [f["missing"], f["under_file"]], [f["dir"], f["file"]]
    if kind in ("out_dir", "out_file", "out_file_or_stdout"):
        bad = paths_bad + ["/proc/x", "/proc/x/y", f["under_file"], f"{f['under_file']}/deeper"]
        bad.append(f["file"] if kind == "out_dir" else f["dir"])
        good = [str(Path(f["root"]) / "new" / junk.replace("/", "_").strip() / "x")]
        good.append(f["dir"] if kind == "out_dir" else f["file"])
        if kind == "out_file_or_stdout":
            good.append("-")
        return bad, good
    if kind == "device":
        return ["", "gpu", "cuda:x", "cuda:-1", "cuda:", junk], ["auto", "cpu", "cuda", "cuda:1"]
    if kind == "source":
        bad = ["", "bogus", "ntu:", "mkv:", f"ntu:{f['missing']}", f"mkv:{f['dir']}", junk]
        return bad, [
            "synthetic",
            "synthetic:tiny",
            f"ntu:{f['dir']}",
            f"mkv:{f['mkv']}",
            "kinect:0",
        ]
    if kind == "folder_name":
        return ["", ".", "..", "a/b", "/abs"], ["session1", "2024-01-01 take"]
    raise AssertionError(f"no values for kind {kind}")


def required_args(p: argparse.ArgumentParser, f: dict[str, str], skip: argparse.Action) -> list:
    """Good values for the required options and positionals other than ``skip``."""
    opts, positionals = [], []
    for action in value_actions(p):
        if action is skip or not (action.required or not action.option_strings):
            continue
        kind, bounds = kind_of(action)
        good = values(kind, bounds, f, random.Random(0))[1][0]
        if action.option_strings:
            opts += [f"{action.option_strings[0]}={good}"]
        else:
            positionals.append(good)
    return opts + positionals


def argv_with(prefix, p, action, value, f) -> list[str]:
    base = required_args(p, f, action)
    if action.option_strings:
        return prefix + base + [f"{action.option_strings[0]}={value}"]
    if value.startswith("-"):
        return prefix + base + ["--", value]
    return prefix + base + [value]


def cases(parser, f, seed) -> Iterator[tuple[list[str], argparse.Action, str, bool]]:
    rng = random.Random(seed)
    for prefix, p in commands(parser):
        for action in value_actions(p):
            kind, bounds = kind_of(action)
            bad, good = values(kind, bounds, f, rng)
            key = (prefix[0], action.option_strings[0] if action.option_strings else action.dest)
            good = GOOD_OVERRIDES.get(key, good)
            for value in bad:
                yield argv_with(prefix, p, action, value, f), action, value, False
            for value in good:
                yield argv_with(prefix, p, action, value, f), action, value, True


def test_every_option_with_a_value_is_checked(parser):
    """No option is parsed as free text: each has choices or a checked type from _args."""
    unchecked = [
        f"{' '.join(prefix)} {a.option_strings or a.dest}"
        for prefix, p in commands(parser)
        for a in value_actions(p)
        if kind_of(a)[0] == "unchecked"
    ]
    assert not unchecked, f"options parsed without a check: {unchecked}"
    names = {" ".join(prefix) for prefix, _ in commands(parser)}
    assert {"distill", "teacher train", "synth", "live", "record", "reproduce"} <= names
    assert len(names) >= 15


@pytest.mark.parametrize("seed", SEEDS)
def test_fuzz_bad_values_exit_2_naming_the_option(parser, files, seed, capsys):
    counted = {"bad": 0, "good": 0}
    failures = []
    for argv, action, _value, ok in cases(parser, files, seed):
        counted["good" if ok else "bad"] += 1
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            err = capsys.readouterr().err
            if ok:
                failures.append(f"good value refused: {argv}: {err.strip()}")
                continue
            names = action.option_strings or [action.metavar or action.dest]
            if exc.code != 2:
                failures.append(f"exit {exc.code}: {argv}")
            lines = err.strip().splitlines()
            if len(lines) != 1 or "Traceback" in err:
                failures.append(f"not one line: {argv}: {err!r}")
            elif not any(n in lines[0] for n in names) and "/".join(names) not in lines[0]:
                failures.append(f"option not named: {argv}: {lines[0]}")
        except Exception as exc:  # a traceback: the failure this suite exists to catch
            failures.append(f"{type(exc).__name__} on {argv}: {exc}")
        else:
            capsys.readouterr()
            if not ok:
                failures.append(f"bad value accepted: {argv}")
    assert not failures, "\n".join(failures[:20]) + f"\n({len(failures)} in all)"
    # what the run covered (printed with -s): hundreds of bad values over every subcommand
    print(f"seed {seed}: {counted['bad']} bad values refused, {counted['good']} good ones parsed")
    assert counted["bad"] > 500 and counted["good"] > 150


def test_fuzz_draws_are_reproducible(parser, files):
    first = [(a, v) for a, _, v, _ in cases(parser, files, 7)]
    again = [(a, v) for a, _, v, _ in cases(parser, files, 7)]
    other = [(a, v) for a, _, v, _ in cases(parser, files, 8)]
    assert first == again and first != other
