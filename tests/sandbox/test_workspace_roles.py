"""The workspace promises (hidden credentials, files the host runs later, only plain files
back) for every identity swarmchat may have: root with its own interpreter (code stays
uid 0 without capabilities), root with a system interpreter (code drops to uid 65534, on
a copy handed to that uid), and swarmchat itself running as uid 65534. Oracles: the host's
files, their owners and modes, and everything that left the sandbox."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sbx_helpers import host_tree
from sbx_roles import Box

SECRET = "sk-live-" + "9" * 40
HOSTILE = """
import os, shutil, sys
loot = []
for name in ('.env', '../.env', 'cfg/.aws/credentials'):
    try:
        loot.append(open(name).read())
    except OSError as exc:
        loot.append(str(exc))
print(loot)
for rel in ('.git/hooks/pre-commit', '.git/config', '.env', 'agents.yaml', 'env/bin/activate', 'x.pth'):
    os.makedirs(os.path.dirname(rel) or '.', exist_ok=True)
    with open(rel, 'w') as f:
        f.write('#!/bin/sh\\ntouch /tmp/pwned\\n')
shutil.copy(sys.executable, 'suid')
for mode in (0o4755, 0o2755):
    try:
        os.chmod('suid', mode)
    except OSError:
        pass
os.symlink('/etc/passwd', 'link')
os.mkfifo('fifo')
open('result.txt', 'w').write('done')
os.chmod('result.txt', 0o777)
"""


def test_workspace_promises_hold_for_every_identity(box: Box) -> None:
    ws = box.ws
    (ws / ".env").write_text(f"OPENAI_API_KEY={SECRET}\n")
    (ws / "cfg/.aws").mkdir(parents=True)
    (ws / "cfg/.aws/credentials").write_text(f"secret = {SECRET}\n")
    (ws / ".git/hooks").mkdir(parents=True)
    (ws / ".git/config").write_text("[core]\n\tbare = false\n")
    (ws / "env/bin").mkdir(parents=True)
    (ws / "env/pyvenv.cfg").write_text("home = /usr/bin\n")
    (ws / "agents.yaml").write_text("agents: []\n")
    for path in ws.rglob("*"):
        os.chown(path, box.role.code_uid, box.role.code_uid)
    name = box.script(HOSTILE)
    os.chown(ws / name, box.role.code_uid, box.role.code_uid)
    before = host_tree(ws)
    report = box.run([{"file": name, "staged": True}])
    result = report["results"][0]  # type: ignore[index]
    assert result["exit_code"] == 0, result
    assert SECRET not in result["stdout"] + result["stderr"]
    after = host_tree(ws)
    assert sorted(set(after) - set(before)) == ["result.txt", "suid"]  # plain files only
    assert {k: after[k] for k in before} == before  # .env, .git, agents.yaml, env/ untouched
    for new in ("result.txt", "suid"):
        mode, uid, _, _ = after[new]
        assert stat.S_ISREG(mode) and not mode & 0o7000 and mode & 0o022 == 0, oct(mode)
        assert uid == box.role.driver_uid  # written by swarmchat's own writer, not the code
    refused = {n for n, _ in result["sync"]["refused"]}
    assert {".env", "agents.yaml", "link", "fifo", "x.pth"} <= refused


def test_code_cannot_change_the_metadata_of_host_files(box: Box) -> None:
    # Landlock does not confine chmod, chown, utime or xattrs: code running as uid 0 could
    # make a file of root's anywhere it can read (the interpreter, /etc/passwd) writable by
    # everyone. The decoy sits where Landlock-tier code can reach it and belongs to the
    # uid the code runs as.
    decoy = Path(f"/dev/shm/sbxtest-decoy-{os.getpid()}-{box.tier}-{box.role.name}")
    decoy.write_text("keep")
    os.chown(decoy, box.role.code_uid, box.role.code_uid)
    decoy.chmod(0o600)
    try:
        before = decoy.stat()
        flags_before = _flags(decoy)
        code = (
            "import fcntl, os\ntry:\n    fd = os.open(P, os.O_RDONLY)\nexcept OSError:  # bwrap: not there\n    fd = -1\n"
            "def chattr():  # +dA: nodump, noatime\n"
            "    now = int.from_bytes(fcntl.ioctl(fd, 0x80086601, bytes(8))[:4], 'little')\n"
            "    fcntl.ioctl(fd, 0x40086602, (now | 0xC0).to_bytes(8, 'little'))\n"
            "for f in (lambda: os.chmod(P, 0o666), lambda: os.utime(P, (0, 0)),\n"
            "          lambda: os.setxattr(P, 'user.mark', b'1'), lambda: os.chown(P, 0, 0), chattr,\n"
            "          lambda: fcntl.fcntl(fd, 1024, fcntl.F_RDLCK)):\n"
            "    try:\n        f()\n    except (OSError, ValueError) as exc:\n        print(exc)\n"
            "open('done', 'w').close()\n"
        ).replace("P", repr(str(decoy)))
        name = box.script(code)
        os.chown(box.ws / name, box.role.code_uid, box.role.code_uid)
        result = box.run([{"file": name, "staged": True}])["results"][0]  # type: ignore[index]
        assert result["exit_code"] == 0, result
        after = decoy.stat()
        assert _flags(decoy) == flags_before
        assert (after.st_mode, after.st_uid, after.st_mtime_ns) == (
            before.st_mode,
            before.st_uid,
            before.st_mtime_ns,
        )
        assert os.listxattr(decoy) == []
    finally:
        decoy.unlink()


def _flags(path: Path) -> int:
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        return int.from_bytes(fcntl.ioctl(fd, 0x80086601, bytes(8))[:4], "little")
    except OSError:
        return -1
    finally:
        os.close(fd)
