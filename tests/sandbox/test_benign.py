"""Benign suite: normal work keeps working inside every sandbox tier."""

from __future__ import annotations

from pathlib import Path

import pytest
from sbx_helpers import run


def test_subprocesses_and_exit_codes(tier: str, workspace: Path) -> None:
    code = (
        "import subprocess, sys\n"
        "out = subprocess.run([sys.executable, '-c', 'print(6 * 7)'], capture_output=True, text=True)\n"
        "print(out.stdout.strip(), subprocess.run(['ls'], capture_output=True).returncode)\n"
        "print('to stderr', file=sys.stderr)\nsys.exit(3)\n"
    )
    r = run(tier, workspace, code)
    assert (r.exit_code, r.stdout, r.stderr) == (3, "42 0\n", "to stderr\n")


def test_multiprocessing_threads_and_asyncio(tier: str, workspace: Path) -> None:
    code = (
        "import asyncio, multiprocessing, threading\n"
        "def square(x):\n    return x * x\n"
        "if __name__ == '__main__':\n"
        "    with multiprocessing.Pool(2) as pool:\n        print(sum(pool.map(square, range(10))))\n"
        "    results = []\n"
        "    threads = [threading.Thread(target=results.append, args=(i,)) for i in range(8)]\n"
        "    [t.start() for t in threads]; [t.join() for t in threads]\n    print(len(results))\n"
        "    async def main():\n        return sum(await asyncio.gather(*(asyncio.sleep(0.01, i) for i in range(5))))\n"
        "    print(asyncio.run(main()))\n"
    )
    r = run(tier, workspace, code, timeout=30)
    assert r.stdout.split() == ["285", "8", "10"], r.stderr


def test_tempfile_sqlite_and_local_modules(tier: str, workspace: Path) -> None:
    (workspace / "helper.py").write_text("def greet(name):\n    return f'hello {name}'\n")
    code = (
        "import sqlite3, tempfile\nfrom helper import greet\n"
        "with tempfile.TemporaryDirectory() as d, open(d + '/x', 'w') as f:\n    f.write('ok')\n"
        "db = sqlite3.connect('data.db')\ndb.execute('create table t (x)')\n"
        "db.executemany('insert into t values (?)', [(i,) for i in range(5)])\ndb.commit()\n"
        "print(greet('sandbox'), db.execute('select sum(x) from t').fetchone()[0])\n"
    )
    r = run(tier, workspace, code)
    assert r.stdout == "hello sandbox 10\n", r.stderr
    assert (workspace / "data.db").stat().st_size > 0


def test_utf8_and_large_output(tier: str, workspace: Path) -> None:
    code = "print('héllo wörld ✓ 日本')\nprint('z' * 100_000)\nopen('big.txt', 'w').write('q' * 100_000)\n"
    r = run(tier, workspace, code)
    assert r.exit_code == 0
    assert r.stdout.startswith("héllo wörld ✓ 日本\nzzz")
    assert r.truncated and "[output cut:" in r.stdout  # the model sees 32 KiB and a note
    assert (workspace / "big.txt").stat().st_size == 100_000


def test_installed_packages_and_a_png_plot(tier: str, workspace: Path) -> None:
    pytest.importorskip("numpy")
    pytest.importorskip("matplotlib")
    code = (
        "import numpy as np\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "x = np.linspace(0, 2 * np.pi, 100)\nplt.plot(x, np.sin(x))\nplt.savefig('plot.png')\n"
        "print(round(float(np.sin(x).max()), 3))\n"
    )
    r = run(tier, workspace, code, timeout=60)
    assert r.stdout.strip() == "1.0", r.stderr
    assert (workspace / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (workspace / ".config").exists() and not (workspace / ".cache").exists()
