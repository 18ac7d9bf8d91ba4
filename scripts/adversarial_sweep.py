#!/usr/bin/env python3
"""Tries phaseflow as an adversarial new user would and counts how each attempt ends.

Three groups of attempts, each in a fresh scratch directory:
  * malformed definition files: the equation files shipped in systems/, mutated (tokens deleted,
    inserted, replaced, strings truncated, values made non-numbers, …) with a fixed seed, each
    loaded with `info` and, when that works, simulated for a few points;
  * the reproductions of issue 21 (deep nesting, huge families, long outputs, bad settings);
  * bad command lines: every numeric option of the main subcommands with bad values.

An attempt is *clean* when it exits 0, or exits 1 or 2 with exactly one `error:` line (no
`panicked`, no signal, no time-out), and leaves nothing in its directory but what it was asked
to write. Anything else is listed. Memory is capped (RLIMIT_AS) so unbounded growth shows as a
failure instead of swapping.

    python3 scripts/adversarial_sweep.py [--binary target/test-opt/phaseflow] [--mutations 400]
        [--seed 1] [--timeout 30] [--json] [--save DIR]
"""

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKENS = ["(", ")", "+", "-", "*", "/", "^", ",", "sum(j, 0, 3, ", "x[", "]", "1e999", "nan",
          "inf", "-", "((", "))", "0/0", "log(", "sqrt(", "\\u0078", "\\\"", "é", "𝜋", "i",
          "j", "t", "x(t - 1)", "1e-300", "9" * 40, "max(", "", " "]


def limit_memory(gib):
    def set_limit():
        b = int(gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (b, b))
    return set_limit


def attempt(binary, args, cwd, timeout, expected_outputs=()):
    """Runs one command; returns (verdict, detail)."""
    before = set(os.listdir(cwd))
    try:
        p = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True,
                           timeout=timeout, preexec_fn=limit_memory(6))
    except subprocess.TimeoutExpired:
        return "timeout", f"over {timeout} s"
    err = p.stderr
    left = sorted(set(os.listdir(cwd)) - before - set(expected_outputs))
    if p.returncode == 0:
        verdict = "ok" if not left else "leftover"
    elif p.returncode < 0:
        verdict = f"signal {-p.returncode}"
    elif "panicked" in err or p.returncode == 101:
        verdict = "panic"
    elif p.returncode in (1, 2) and err.count("error:") == 1:
        verdict = "clean error" if not left else "leftover"
    elif p.returncode in (1, 2):
        verdict = "message not once"
    else:
        verdict = f"exit {p.returncode}"
    if p.returncode != 0:
        # the same located message twice (`F:L:C: msg: F:L:C: msg`)
        locs = re.findall(r"[\w./-]+\.toml:\d+:\d+:", err)
        if len(locs) > len(set(locs)):
            verdict = "message not once"
    if p.returncode != 0:
        for o in expected_outputs:
            if (Path(cwd) / o).exists() and o not in before:
                verdict = "output left by a failed run"
    return verdict, (err.strip().splitlines() or [""])[0][:200] + (f" left {left}" if left else "")


def mutate(text, rng):
    """One mutation of one equation string of a definition file (or of the file itself)."""
    strings = [m for m in re.finditer(r'^(\s*[\w\[\]]+\s*=\s*)"([^"\n]*)"', text, re.M)]
    kind = rng.randrange(8)
    if kind == 0 or not strings:
        cut = rng.randrange(len(text))
        return text[:cut]  # truncated file
    m = rng.choice(strings)
    s = m.group(2)
    pos = rng.randrange(len(s) + 1)
    if kind == 1:
        s = s[:pos] + s[pos + 1:]
    elif kind in (2, 3):
        s = s[:pos] + rng.choice(TOKENS) + s[pos:]
    elif kind == 4:
        s = s[:pos] + rng.choice(TOKENS) + s[pos + rng.randrange(1, 4):]
    elif kind == 5:
        s = "(" * rng.choice([10, 300, 5000]) + s + ")" * rng.choice([10, 300, 5000])
    elif kind == 6:
        s = " + ".join([s] * rng.choice([2, 100, 3000]))
    else:
        return text[:m.start()] + m.group(1) + rng.choice(['"1/0"', "nan", "[1, 2", "1e999",
                                                          '"x"', "-1"]) + text[m.end():]
    return text[:m.start(2)] + s.replace('"', '\\"') + text[m.end(2):]


def equation_files():
    out = []
    for p in sorted((ROOT / "systems").rglob("*.toml")):
        t = p.read_text()
        if "[equations]" in t and "particles" not in p.parts and "active" not in p.parts:
            out.append(p)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=str(ROOT / "target/test-opt/phaseflow"))
    ap.add_argument("--mutations", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--save", metavar="DIR", help="copy the files of attempts that did not end cleanly here")
    a = ap.parse_args()
    binary = str(Path(a.binary).resolve())
    rng = random.Random(a.seed)
    results = []  # (group, case, verdict, detail)

    def run(group, case, args, files=None, outputs=()):
        d = tempfile.mkdtemp(prefix="pf-sweep-")
        try:
            for name, text in (files or {}).items():
                Path(d, name).write_text(text)
            v, detail = attempt(binary, args, d, a.timeout, outputs)
            results.append((group, case, v, detail))
            if a.save and v not in ("ok", "clean error"):
                dest = Path(a.save, re.sub(r"[^\w.-]+", "_", case))
                dest.mkdir(parents=True, exist_ok=True)
                for name, text in (files or {}).items():
                    Path(dest, name).write_text(text)
                Path(dest, "command").write_text(" ".join(["phaseflow", *args]) + "\n")
            return v
        finally:
            shutil.rmtree(d, ignore_errors=True)

    # 1. mutated definition files
    files = equation_files()
    for k in range(a.mutations):
        src = rng.choice(files)
        text = mutate(src.read_text(), rng)
        case = f"{src.name} mutation {k}"
        if run("definitions", case, ["info", "m.toml"], {"m.toml": text}) == "ok":
            run("definitions", case + " (simulate)",
                ["simulate", "m.toml", "--points", "50", "-q", "-o", "o.h5"],
                {"m.toml": text}, outputs=("o.h5",))

    # 2. the issue's reproductions
    flow = 'name = "T"\nkind = "flow"\nvariables = ["x"]\ninitial_conditions = [0.1]\n' \
           '[parameters]\nk = 1.0\n[equations]\nx = "{}"\n'
    issue = {
        "20,000-term sum": flow.format(" + ".join(["x"] * 20000)),
        "10,000 nested parentheses": flow.format("(" * 10000 + "x" + ")" * 10000),
        "30,000 unary minus": flow.format("-" * 30000 + "x"),
        "sum of 99,999 terms": flow.format("-0.001*sum(j, 0, 99999, x)"),
        "nested sums 10^8 terms": flow.format("sum(j,0,9999,sum(k,0,9999,x))"),
        "define cycle": flow.format("-x") + '[define]\na = "b + 1"\nb = "a * 2"\n',
        "unknown symbol in unused define": flow.format("-x") + '[define]\nq = "k + zz"\n',
        "parameter 1/0": flow.replace("k = 1.0", 'k = "1/0"').format("-k*x"),
        "TOML escape": flow.format("-\\u0078 + )"),
    }
    for case, text in issue.items():
        run("issue 21", case, ["info", "f.toml"], {"f.toml": text})
    for case, args in {
        "lorenz96 dimension 1e7": ["info", "lorenz96", "--set", "dimension=10000000"],
        "lorenz96 dimension 1e5": ["info", "lorenz96", "--set", "dimension=100000"],
        "80 GB output": ["simulate", "lorenz", "--t-end", "1e7", "--dt-out", "1e-3", "-o", "o.h5"],
        "trap image overflow": ["simulate", "trap", "--set", "k=0", "--set", "dt=1e6",
                                "--steps", "200", "--every", "100", "-q", "-o", "o.h5"],
        "every > steps": ["simulate", "trap", "--steps", "10", "--every", "100", "-o", "o.h5"],
        "one point": ["simulate", "lorenz", "--t-end", "1", "--dt-out", "5", "-o", "o.h5"],
        "t-end -5": ["simulate", "lorenz", "--t-end", "-5", "--dt-out", "0.1", "-o", "o.h5"],
        "-o /dev/null": ["simulate", "lorenz", "--points", "10", "-o", "/dev/null"],
        "-o a directory": ["simulate", "lorenz", "--points", "10", "-o", "."],
        "-o missing dir": ["simulate", "lorenz", "--points", "10", "-o", "no/such/o.h5"],
        "tiny delay": ["simulate", "mackey_glass", "--set", "tau=1e-300", "-o", "o.h5"],
        "series --embed 0": ["series", "missing.h5", "--embed", "0"],
        "N = 1e12": ["info", "abp_mips", "--set", "N=1e12"],
        "definition is a directory": ["info", "/tmp"],
        "hyper nvar.order=-1": ["forecast", "bench", "--systems", "lorenz", "--models", "nvar",
                                "--hyper", "nvar.order=-1", "-o", "bench"],
        "external timeout 0": ["forecast", "bench", "--external", "x=true",
                               "--external-timeout", "0", "-o", "bench"],
    }.items():
        run("issue 21", case, args, outputs=("o.h5",) if "dimension 1e5" in case else ())

    # 3. bad command lines: numeric options with bad values
    options = {
        ("simulate", "lorenz"): ["--points", "--t-end", "--dt-out", "--rtol", "--atol",
                                 "--burn-in", "--ensemble", "--noise", "--pts-per-period",
                                 "--seed"],
        ("simulate", "trap"): ["--steps", "--every", "--replicas", "--t-end",
                               "--checkpoint-interval"],
        ("invariants", "lorenz"): ["--t-end", "--transient", "--rtol", "--atol"],
    }
    for (cmd, system), opts in options.items():
        for opt in opts:
            for value in ["-5", "0", "nan", "inf", "1e308", "abc", ""]:
                args = [cmd, system, opt, value, "-q"]
                if cmd == "simulate":
                    args += ["-o", "o.h5"]
                    if system == "lorenz" and opt not in ("--points", "--t-end", "--dt-out"):
                        args += ["--points", "20"]
                    if system == "trap" and opt not in ("--steps", "--t-end"):
                        args += ["--steps", "20"]
                run("command lines", f"{cmd} {system} {opt} {value!r}", args, outputs=("o.h5",))

    counts = {}
    for g, _, v, _ in results:
        counts.setdefault(g, {}).setdefault(v, 0)
        counts[g][v] += 1
    bad = [r for r in results if r[2] not in ("ok", "clean error")]
    if a.json:
        print(json.dumps({"counts": counts, "not clean": bad}, indent=1))
    else:
        for g, c in counts.items():
            print(f"{g}: {sum(c.values())} attempts: " + ", ".join(f"{n} {v}" for v, n in
                                                                  sorted(c.items())))
        for g, case, v, detail in bad:
            print(f"NOT CLEAN [{g}] {case}: {v}: {detail}")
        print(f"{len(results)} attempts, {len(bad)} not clean")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
