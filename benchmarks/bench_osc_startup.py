"""What the ``openstack cache`` plugin adds to every ``openstack`` start: ``openstack --version`` with and without it.

OSC imports every ``openstack.cli.extension`` plugin module (and calls its ``build_option_parser``) on every start,
even for ``--version``, so this is the cost every user of the virtualenv pays. Goal: the plugin adds at most 3%.

Method (one run measures both sides):

* Two virtualenvs are made here from the *same* base interpreter as the project's ``.venv``. Each one's
  ``site-packages`` holds a symlink to every entry of ``.venv``'s ``site-packages`` except this distribution's
  own (its ``*.dist-info`` and editable-install hooks); **with** then gets this project installed from a wheel
  built here, as a user installs it from PyPI. Same interpreter, same other packages and byte-code; the only
  difference is whether ``osc_plugin`` is installed, i.e. whether OSC's entry-point scan finds it. (The
  editable install of ``.venv`` is not what users run: its import hook is asked about every module OSC imports,
  which alone cost 2-4 %. ``.venv`` itself is shown for reference only.)
* Before timing, the script checks that OSC loads the plugin on one side and not on the other.
* Both run the same ``openstack`` console script (``<python> .venv/bin/openstack --version``) from a neutral
  directory, each side first warmed up (stevedore caches entry points per environment), then alternating with /
  without so machine load hits both alike. Reported: median wall time and median CPU time (user+sys of the child,
  less noisy on a shared machine) and the overhead of the medians. The verdict uses CPU time.
* For context: the plugin module's own import time, in a fresh interpreter with what OSC loads before it.

Usage: .venv/bin/python benchmarks/bench_osc_startup.py [--repeat 25] [--warmup 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
OPENSTACK_SCRIPT = VENV / "bin" / "openstack"
DISTRIBUTION = "glancecache_client"  # the normalized distribution name: dist-info and editable hooks start so
GOAL_PERCENT = 3.0

PROBE = (
    "import warnings; warnings.simplefilter('ignore'); "
    "from openstackclient.common import clientmanager as c; "
    "print(' '.join(sorted(m.__name__ for m in c.PLUGIN_MODULES)))"
)


@dataclass
class Side:
    name: str
    python: Path
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


# Children run from a neutral directory: run from the project root, "" on sys.path would expose the project's
# *.egg-info (entry points included) to the "without" side.
NEUTRAL_CWD = tempfile.gettempdir()


def site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        cwd=NEUTRAL_CWD,
    )
    return Path(out.stdout.strip())


def is_ours(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith((f"{DISTRIBUTION}-", f"__editable__.{DISTRIBUTION}-", f"__editable___{DISTRIBUTION}_"))


def build_wheel(where: Path) -> Path:
    """This project as a wheel (what ``pip install glancecache-client[osc]`` puts in place)."""
    subprocess.run(
        [str(VENV_PYTHON), "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(where), str(ROOT)],
        check=True,
    )
    [wheel] = where.glob(f"{DISTRIBUTION}-*.whl")
    return wheel


def make_env(where: Path, *, wheel: Path | None) -> Path:
    """A venv sharing the project's dependencies by symlink, plus this project from ``wheel`` if given."""
    base = subprocess.run(
        [str(VENV_PYTHON), "-c", "import sys; print(sys._base_executable)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run([base, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    source, target = site_packages(VENV_PYTHON), site_packages(python)
    left_out = []
    for entry in sorted(source.iterdir()):
        if is_ours(entry.name):
            left_out.append(entry.name)
            continue
        link = target / entry.name
        if not link.exists():
            link.symlink_to(entry)
    if not left_out:
        raise SystemExit(f"found no {DISTRIBUTION} files in {source}: is the project installed in .venv?")
    if wheel is None:
        print(f"both environments leave out .venv's {', '.join(left_out)}", flush=True)
    else:
        subprocess.run(
            [str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
            check=True,
        )
        print(f"with-plugin environment: {wheel.name} installed", flush=True)
    return python


def loaded_plugins(python: Path, env: dict[str, str]) -> set[str]:
    out = subprocess.run(
        [str(python), "-c", PROBE], capture_output=True, text=True, env=env, check=True, cwd=NEUTRAL_CWD
    )
    return set(out.stdout.split())


def run_once(side: Side, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and child CPU seconds of one ``openstack --version``; fails loudly if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [str(side.python), str(OPENSTACK_SCRIPT), "--version"],
        capture_output=True,
        text=True,
        env=env,
        cwd=NEUTRAL_CWD,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or not (done.stdout + done.stderr).strip().startswith("openstack "):
        raise SystemExit(f"{side.name}: openstack --version failed ({done.returncode}): {done.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def plugin_import_ms(env: dict[str, str]) -> float:
    """Milliseconds to import the plugin modules once what OSC has already loaded by then is loaded.

    (``-X importtime`` cannot see them: stevedore imports plugins through importlib, which it does not trace.)
    """
    code = (
        "import argparse, collections.abc, os, re, typing, time; "
        "started = time.perf_counter(); import osc_plugin.plugin; "
        "print((time.perf_counter() - started) * 1000)"
    )
    done = subprocess.run(
        [str(VENV_PYTHON), "-c", code], capture_output=True, text=True, env=env, check=True, cwd=NEUTRAL_CWD
    )
    return float(done.stdout)


def percent(with_plugin: float, without: float) -> float:
    return (with_plugin - without) / without * 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=25, help="timed runs per side (default 25)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per side first (default 2)")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["PYTHONWARNINGS"] = "ignore"
    with tempfile.TemporaryDirectory(prefix="osc-without-plugin-") as tmp:
        wheel = build_wheel(Path(tmp) / "wheel")
        with_side = Side("with plugin", make_env(Path(tmp) / "with", wheel=wheel))
        without_side = Side("without plugin", make_env(Path(tmp) / "without", wheel=None))
        reference = Side(".venv (reference)", VENV_PYTHON)

        with_plugins, without_plugins = loaded_plugins(with_side.python, env), loaded_plugins(without_side.python, env)
        if "osc_plugin.plugin" not in with_plugins or "osc_plugin.plugin" in without_plugins:
            raise SystemExit(f"environments are not what they claim: with={with_plugins} without={without_plugins}")
        print(f"OSC plugin modules loaded with:    {' '.join(sorted(with_plugins))}")
        print(f"OSC plugin modules loaded without: {' '.join(sorted(without_plugins))}")

        for side in (with_side, without_side, reference):
            for _ in range(args.warmup):
                run_once(side, env)
        for index in range(args.repeat):
            order = (with_side, without_side) if index % 2 == 0 else (without_side, with_side)
            for side in (*order, reference):
                wall, cpu = run_once(side, env)
                side.wall.append(wall)
                side.cpu.append(cpu)
        import_ms = statistics.median(plugin_import_ms(env) for _ in range(5))

    rows = []
    for side in (without_side, with_side, reference):
        rows.append(
            (side.name, statistics.median(side.wall), statistics.median(side.cpu), min(side.wall), max(side.wall))
        )
    wall_pct = percent(statistics.median(with_side.wall), statistics.median(without_side.wall))
    cpu_pct = percent(statistics.median(with_side.cpu), statistics.median(without_side.cpu))

    print()
    print(
        f"openstack --version, {args.repeat} alternating runs per side, python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, {sysconfig.get_platform()}"
    )
    print()
    print(f"| {'environment':<17} | {'wall median s':>13} | {'cpu median s':>12} | {'wall min-max s':>15} |")
    print(f"|{'-' * 19}|{'-' * 15}|{'-' * 14}|{'-' * 17}|")
    for name, wall, cpu, low, high in rows:
        print(f"| {name:<17} | {wall:>13.3f} | {cpu:>12.3f} | {f'{low:.3f}-{high:.3f}':>15} |")
    print()
    verdict = "OK" if cpu_pct <= GOAL_PERCENT else "OVER GOAL"
    goal = f"goal <= {GOAL_PERCENT:.0f}% (cpu): {verdict}"
    print(f"| {'with vs without':<17} | {wall_pct:>12.1f}% | {cpu_pct:>11.1f}% | {goal}")
    print()
    print(f"osc_plugin's own import time (fresh interpreter, median of 5): {import_ms:.2f} ms")
    return 0 if cpu_pct <= GOAL_PERCENT else 1


if __name__ == "__main__":
    sys.exit(main())
