"""Removing what agent code wrote never reaches outside it: symlinks are unlinked, never
followed, permissions change only through descriptors, even while code races the removal."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from swarmchat.sandbox.cleanup import remove_tree


def victim_tree(root: Path) -> Path:
    victim = root / "victim"
    (victim / "sub").mkdir(parents=True)
    for i in range(50):
        (victim / f"f{i}").write_text("keep")
    victim.chmod(0o755)
    return victim


def chain(top: Path, depth: int) -> None:
    """Nested directories ``d/d/d/...`` below ``top``, made through descriptors."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = sub
    os.close(fd)


def test_links_and_locked_directories_are_removed_not_followed(tmp_path: Path) -> None:
    victim = victim_tree(tmp_path)
    run = tmp_path / "run"
    (run / "locked" / "deep").mkdir(parents=True)
    (run / "locked" / "deep" / "x").write_text("x")
    (run / "to-victim").symlink_to(victim)
    (run / "locked" / "to-victim-file").symlink_to(victim / "f0")
    os.mkfifo(run / "fifo")
    (run / "locked").chmod(0o500)
    chain(run, 1500)  # deeper than Python's recursion limit, and than PATH_MAX allows
    remove_tree(run)
    assert not run.exists()
    assert len(list(victim.iterdir())) == 51 and stat.S_IMODE(victim.stat().st_mode) == 0o755


def test_a_directory_swapped_for_a_symlink_mid_removal_is_not_followed(tmp_path: Path) -> None:
    victim = victim_tree(tmp_path)
    for attempt in range(8):
        run = tmp_path / f"run{attempt}"
        (run / "a").mkdir(parents=True)
        for i in range(500):
            (run / "a" / f"f{i}").write_text("x")
        stop = threading.Event()

        def swap(run: Path = run, stop: threading.Event = stop) -> None:  # the racing code
            while not stop.is_set():
                try:
                    os.rename(run / "a", run / "b")
                    (run / "a").symlink_to(victim)
                except OSError:
                    pass

        racer = threading.Thread(target=swap)
        racer.start()
        try:
            remove_tree(run)
        finally:
            stop.set()
            racer.join()
        remove_tree(run)
    assert len(list(victim.iterdir())) == 51 and stat.S_IMODE(victim.stat().st_mode) == 0o755
    assert (victim / "f1").read_text() == "keep"


def test_a_deep_tree_is_removed_even_when_names_are_planted_at_the_top(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for i in range(1, 41):  # what a run could plant where deep subtrees are moved up
        planted = run / f".swarmchat-deep-{i}" / "x"
        planted.mkdir(parents=True)
    chain(run, 200)  # deeper than the descriptors the removal holds open
    remove_tree(run)
    assert not run.exists()
