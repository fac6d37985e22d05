"""The OS layer around the worker's shell: Linux Landlock, plus a private mount namespace for the run's own files.

The static checks in `aw_tui.engine.sandbox` read a command's text; they cannot see what a script the worker
wrote does when it runs. This layer confines the process itself, and everything it starts:

* Landlock (Linux >= 5.13) limits WRITES to the workspace, the temp dirs and a few device files. Reads and
  execution stay unrestricted (reading outside is allowed by design). From ABI 6 on, the shell also cannot
  signal processes outside its domain (the engine, the TUI) nor reach their abstract unix sockets; at any ABI
  it cannot ptrace them (so not /proc/<engine>/root either) and cannot mount or unmount anything.
* Landlock grants are hierarchical: a subfolder of the workspace cannot be excluded. The run directory often
  lies inside it (the default runs root is the project's ./tmp), so the shell gets a private mount namespace
  (an unprivileged user namespace, like `unshare -Urm`) in which the run directory and aw-tui's config are
  read-only bind mounts, and each directory on the way to them is bound onto itself so that it cannot be
  renamed away (a mount point cannot be renamed or removed). The engine, outside that namespace, writes as
  before. Where user namespaces are not allowed, the Landlock grants are instead given entry by entry,
  leaving out the way to the read-only paths; the shell then cannot create or remove entries directly in the
  directories on that way (the workspace root among them when the run directory lies inside it).
* Without Landlock (not Linux, an old kernel, a seccomp filter that refuses it) the shell runs unconfined; the
  engine records why, once per run. AW_TUI_NO_LANDLOCK=1 turns the whole layer off: an escape hatch for a
  build that cannot work confined, and a way for tests to see the fallback.

How it is applied: the engine runs `python -I -S -c WRAPPER [options] -- bash -c COMMAND`, where WRAPPER is
the first half of this file: a fresh single-threaded process that enters the namespace, restricts itself and
then execs bash, so nothing runs in a forked child of the engine's threaded asyncio process (preexec_fn is
documented as unsafe there, and unshare(CLONE_NEWUSER) refuses a multi-threaded caller). The wrapper runs
before any confinement, so what it runs must be out of the shell's reach: its text is read once when the
engine imports this module and handed over in argv (not read from a file the shell might have changed: the
package may lie in the workspace, in a project's .venv), the interpreter is the real binary behind
sys.executable with no site-packages and no PYTHON* variables (-I -S), and where that interpreter or its
standard library lies inside a tree the shell may write, they are made read-only to it like the run. The
wrapper imports only the cheap part of the standard library (its start-up costs each bash call a few tens of
ms). `python -I -S confine.py [options] -- PROGRAM` and `python -m aw_tui.engine.confine` run it by hand.
"""

from __future__ import annotations

import _signal  # the C module: `signal` would import enum, which costs the wrapper 10 ms on every bash call
import ctypes
import errno
import os
import stat
import sys
from collections.abc import Iterable, Mapping, Sequence

NO_LANDLOCK_ENV = "AW_TUI_NO_LANDLOCK"
CONFINE_FAILED_EXIT = 125  # the wrapper could not confine the command, which therefore did not run
SELF_TEST_TIMEOUT_S = 20.0

# landlock_create_ruleset, landlock_add_rule, landlock_restrict_self. Syscalls added after 5.1 share one number
# on every architecture but alpha; the list names the ones this has been checked on and their common aliases.
_SYSCALLS = {machine: (444, 445, 446) for machine in ("x86_64", "amd64", "aarch64", "arm64", "riscv64")}

_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights (include/uapi/linux/landlock.h). Read and execute rights are deliberately not handled.
FS_WRITE_FILE = 1 << 1
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REMOUNT = 32
_MS_NOATIME = 1024
_MS_NODIRATIME = 2048
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_MS_RELATIME = 1 << 21
_MS_STRICTATIME = 1 << 24
# statvfs f_flag bits -> the mount flags a remount inside a user namespace must keep (the kernel locks them).
_KEPT_FLAGS = ((os.ST_NOSUID, _MS_NOSUID), (os.ST_NODEV, _MS_NODEV), (os.ST_NOEXEC, _MS_NOEXEC),
               (os.ST_NOATIME, _MS_NOATIME), (os.ST_NODIRATIME, _MS_NODIRATIME),
               (os.ST_RELATIME, _MS_RELATIME))  # fmt: skip

# Device files a shell needs to write (output sinks, randomness, terminals); never /dev as a whole, where a
# user allowed to (root) could write a disk.
DEVICE_FILES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/ptmx")
DEVICE_DIRS = ("/dev/pts", "/dev/shm")  # terminals; POSIX shared memory and semaphores (multiprocessing)


class ConfinementError(Exception):
    """The confinement could not be applied; the message says which step failed and why."""


def write_rights(abi: int) -> int:
    """The write-side filesystem rights Landlock ABI `abi` knows (all of them handled, granted where allowed)."""
    rights = (FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_CHAR | FS_MAKE_DIR | FS_MAKE_REG
              | FS_MAKE_SOCK | FS_MAKE_FIFO | FS_MAKE_BLOCK | FS_MAKE_SYM)  # fmt: skip
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def file_rights(abi: int) -> int:
    """The subset of `write_rights` that applies to a file (a rule on a file may hold only these)."""
    return write_rights(abi) & (FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV)


def scopes(abi: int) -> int:
    return SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0


# ---------------------------------------------------------------------------------------------------------------
# System calls
# ---------------------------------------------------------------------------------------------------------------


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]  # fmt: skip


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in the kernel's header
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_LIBC: list[ctypes.CDLL] = []


def _libc() -> ctypes.CDLL:
    if not _LIBC:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        _LIBC.append(libc)
    return _LIBC[0]


def _machine() -> str:
    return os.uname().machine.lower()


def _syscall_numbers() -> tuple[int, int, int] | None:
    return _SYSCALLS.get(_machine()) if sys.platform.startswith("linux") else None


def _call(number: int, *args: object) -> int:
    # syscall() is variadic: every integer goes as a c_long (or c_size_t), so no register keeps stale high bits.
    result = _libc().syscall(ctypes.c_long(number), *args)
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def landlock_abi() -> tuple[int, str]:
    """(the Landlock ABI version this kernel offers, "") or (0, why there is none)."""
    if not sys.platform.startswith("linux"):
        return 0, f"Landlock is Linux-only and this is {sys.platform}"
    numbers = _syscall_numbers()
    if numbers is None:
        return 0, f"Landlock's system call numbers are not known here for the {_machine()} architecture"
    try:
        abi = _call(numbers[0], None, ctypes.c_size_t(0), ctypes.c_long(_CREATE_RULESET_VERSION))
    except OSError as error:
        if error.errno == errno.ENOSYS:
            return 0, "the kernel has no Landlock (too old or built without it; it needs Linux 5.13 or later)"
        if error.errno == errno.EOPNOTSUPP:
            return 0, "Landlock is built into the kernel but not enabled (the lsm= boot parameter leaves it out)"
        return 0, f"asking the kernel for Landlock failed: {os.strerror(error.errno or 0)}"
    return abi, ""


def _open_path(path: str) -> int | None:
    """An O_PATH descriptor for `path` (None when it does not exist); symlinks are not followed: the paths given
    are real paths, and an entry that is a link is not granted through."""
    try:
        return os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfinementError(f"cannot open {path}: {error.strerror}") from error


def restrict_self(abi: int, grants: Iterable[str]) -> None:
    """Restrict this process (and what it execs) to writing beneath `grants` (directories: every write right;
    files: the file rights). Paths that do not exist are skipped, symlinks are not granted through."""
    numbers = _syscall_numbers()
    if abi < 1 or numbers is None:
        raise ConfinementError("Landlock is not available")
    create, add_rule, restrict = numbers
    handled = write_rights(abi)
    attr = _RulesetAttr(handled_access_fs=handled, handled_access_net=0, scoped=scopes(abi))
    size = 8 if abi < 4 else 16 if abi < 6 else 24  # the struct as this ABI knows it
    try:
        ruleset = _call(create, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_long(0))
    except OSError as error:
        raise ConfinementError(f"landlock_create_ruleset failed: {error.strerror}") from error
    try:
        for path in grants:
            fd = _open_path(path)
            if fd is None:
                continue
            try:
                mode = os.fstat(fd).st_mode
                if stat.S_ISLNK(mode):
                    continue
                rights = handled if stat.S_ISDIR(mode) else file_rights(abi)
                rule = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
                try:
                    _call(add_rule, ctypes.c_long(ruleset), ctypes.c_long(_RULE_PATH_BENEATH), ctypes.byref(rule),
                          ctypes.c_long(0))  # fmt: skip
                except OSError as error:
                    raise ConfinementError(f"landlock_add_rule for {path} failed: {error.strerror}") from error
            finally:
                os.close(fd)
        # Every argument as a full unsigned long: prctl is variadic and checks that the unused ones are 0.
        if _libc().prctl(*(ctypes.c_ulong(a) for a in (_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))) != 0:
            raise ConfinementError(f"prctl(PR_SET_NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}")
        try:
            _call(restrict, ctypes.c_long(ruleset), ctypes.c_long(0))
        except OSError as error:
            raise ConfinementError(f"landlock_restrict_self failed: {error.strerror}") from error
    finally:
        os.close(ruleset)


def _mount(source: str | None, target: str, flags: int) -> None:
    result = _libc().mount(None if source is None else os.fsencode(source), os.fsencode(target), None,
                           ctypes.c_ulong(flags), None)  # fmt: skip
    if result != 0:
        code = ctypes.get_errno()
        raise ConfinementError(f"mount of {target} failed: {os.strerror(code)}")


def _write_proc(name: str, text: str) -> None:
    try:
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)
    except OSError as error:
        raise ConfinementError(f"writing /proc/self/{name} failed: {error.strerror}") from error


def _kept_flags(path: str) -> int:
    flags = os.statvfs(path).f_flag
    kept = 0
    for st_flag, ms_flag in _KEPT_FLAGS:
        if flags & st_flag:
            kept |= ms_flag
    if not kept & (_MS_NOATIME | _MS_RELATIME):
        kept |= _MS_STRICTATIME
    return kept


def enter_mount_namespace(read_only: Sequence[str], pins: Sequence[str]) -> None:
    """Move this process into a new user and mount namespace where each of `read_only` is a read-only bind
    mount and each of `pins` is bound onto itself (a mount point cannot be renamed or removed).

    The user namespace maps only our own uid and gid (what `unshare -r` does for an unprivileged user), so
    nothing needs privileges; a root caller stays uid 0 inside, with capabilities only over its namespace.
    """
    uid, gid = os.geteuid(), os.getegid()
    if _libc().unshare(ctypes.c_int(_CLONE_NEWUSER | _CLONE_NEWNS)) != 0:
        code = ctypes.get_errno()
        hint = " (user namespaces are disabled or restricted here)" if code in (errno.EPERM, errno.ENOSPC) else ""
        raise ConfinementError(f"unshare(CLONE_NEWUSER|CLONE_NEWNS) failed: {os.strerror(code)}{hint}")
    _write_proc("setgroups", "deny")
    _write_proc("uid_map", f"{uid} {uid} 1")
    _write_proc("gid_map", f"{gid} {gid} 1")
    _mount(None, "/", _MS_REC | _MS_PRIVATE)  # nothing done here reaches the engine's namespace
    for path in pins:
        _mount(path, path, _MS_BIND | _MS_REC)
    for path in read_only:
        _mount(path, path, _MS_BIND | _MS_REC)
        _mount(None, path, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _kept_flags(path))
    # The working directory still points at the directory under the new mounts: reach it again through them,
    # or a relative path (tmp/run/control.jsonl) would bypass the read-only mount.
    os.chdir(os.getcwd())


# ---------------------------------------------------------------------------------------------------------------
# Which paths get what
# ---------------------------------------------------------------------------------------------------------------


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _ancestors(path: str) -> list[str]:
    """The proper ancestors of an absolute path, outermost first, "/" excluded."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: index + 1]) for index in range(len(parts))]


def outermost(paths: Iterable[str]) -> list[str]:
    """`paths` without those lying inside another of them, sorted."""
    kept: list[str] = []
    for path in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        if not any(_within(path, other) for other in kept):
            kept.append(path)
    return sorted(kept)


def pins_for(read_only: Sequence[str], writable: Sequence[str]) -> list[str]:
    """The directories on the way to each read-only path that the shell could rename or remove (their parent
    lies in a writable tree), outermost first: bound onto themselves, they can no longer be moved away."""
    pins: list[str] = []
    for path in read_only:
        for ancestor in _ancestors(path):
            parent = os.path.dirname(ancestor)
            if any(_within(parent, root) for root in writable) and ancestor not in pins:
                pins.append(ancestor)
    return sorted(pins, key=lambda p: p.count("/"))


def walk_grants(writable: Sequence[str], read_only: Sequence[str]) -> tuple[list[str], list[str]]:
    """(paths to grant, directories left without rights) for Landlock alone: each writable tree is granted
    whole unless it holds a read-only path; then its entries are granted one by one, and the way down to the
    read-only path is walked the same way, so only the directories on that way (and the read-only paths) get
    no rights. Symlinks are not granted (they would grant their target)."""
    grants: list[str] = []
    held_back: list[str] = []

    def walk(directory: str) -> None:
        held_back.append(directory)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return
        for name in names:
            path = os.path.join(directory, name)
            if path in read_only:
                continue
            if any(_within(protected, path) for protected in read_only):
                walk(path)
            elif not os.path.islink(path):
                grants.append(path)

    for root in outermost(writable):
        inside = [p for p in read_only if _within(p, root)]
        if not inside:
            grants.append(root)
        elif root not in inside:
            walk(root)
    return grants, held_back


def held_back_dirs(writable: Sequence[str], read_only: Sequence[str]) -> list[str]:
    """The directories `walk_grants` leaves without rights, without listing any directory."""
    dirs: set[str] = set()
    for root in outermost(writable):
        for path in read_only:
            if _within(path, root) and path != root:
                dirs.update(a for a in [root, *_ancestors(path)] if _within(a, root) and a != path)
    return sorted(dirs)


# ---------------------------------------------------------------------------------------------------------------
# The wrapper (this file run as a script)
# ---------------------------------------------------------------------------------------------------------------

USAGE = """usage: confine.py [--namespace] [--allow PATH]... [--read-only PATH]... -- PROGRAM [ARG]...
       confine.py --self-test DIR

Runs PROGRAM confined by Landlock: it may write only beneath the --allow paths (directories: every write right;
files: writing and truncating). With --namespace, each --read-only path (inside an allowed tree) is made a
read-only bind mount in a private mount namespace; without it, the --allow trees are granted entry by entry so
that the --read-only paths stay out. Exits 125 without running PROGRAM when the confinement cannot be applied."""


class _Request:
    def __init__(self) -> None:
        self.namespace = False
        self.allow: list[str] = []
        self.read_only: list[str] = []
        self.program: list[str] = []
        self.self_test: str | None = None


class _UsageError(Exception):
    pass


def _parse(args: Sequence[str]) -> _Request:
    request = _Request()
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            request.program = list(args[index + 1 :])
            break
        if arg == "--namespace":
            request.namespace = True
        elif arg in ("--allow", "--read-only", "--self-test"):
            if index + 1 >= len(args):
                raise _UsageError(f"{arg} needs a path")
            value = args[index + 1]
            if not os.path.isabs(value):
                raise _UsageError(f"{arg} needs an absolute path, got {value!r}")
            if arg == "--self-test":
                request.self_test = value
            else:
                (request.allow if arg == "--allow" else request.read_only).append(value)
            index += 1
        else:
            raise _UsageError(f"unknown argument {arg!r}")
        index += 1
    if request.self_test is None and not request.program:
        raise _UsageError("no program to run: give it after --")
    return request


def _real(paths: Iterable[str]) -> list[str]:
    return [os.path.realpath(path) for path in paths if os.path.lexists(path)]


def apply(allow: Sequence[str], read_only: Sequence[str], *, namespace: bool) -> None:
    """Confine this process as the wrapper's options say. Raises ConfinementError."""
    abi, why = landlock_abi()
    if abi < 1:
        raise ConfinementError(why)
    writable = _real(allow)
    protected = [path for path in _real(read_only) if any(_within(path, root) for root in writable)]
    if namespace:
        dirs = [path for path in writable if os.path.isdir(path)]
        enter_mount_namespace(protected, pins_for(protected, dirs))
        grants = writable
    else:
        grants, _ = walk_grants([p for p in writable if os.path.isdir(p)], protected)
        grants += [p for p in writable if not os.path.isdir(p)]
    restrict_self(abi, grants)


def _attempt_write(path: str) -> str:
    """"ok", or the error name writing `path` gave."""
    try:
        with open(path, "w") as handle:
            handle.write("x")
    except OSError as error:
        return errno.errorcode.get(error.errno or 0, str(error))
    return "ok"


def self_test(scratch: str) -> dict[str, object]:
    """Confine this process around `scratch` and check the result with real writes: the engine's probe."""
    report: dict[str, object] = {"landlock_abi": 0, "landlock_error": "", "namespace": False, "namespace_error": ""}
    abi, why = landlock_abi()
    report["landlock_abi"] = abi
    if abi < 1:
        report["landlock_error"] = why
        return report
    allowed, outside = os.path.join(scratch, "allowed"), os.path.join(scratch, "outside")
    protected, work = os.path.join(allowed, "run"), os.path.join(allowed, "work")
    for directory in (protected, work, outside):
        os.makedirs(directory, exist_ok=True)
    os.chdir(allowed)
    try:
        enter_mount_namespace([protected], pins_for([protected], [allowed]))
        report["namespace"] = True
    except ConfinementError as error:
        report["namespace_error"] = str(error)
    try:
        restrict_self(abi, [allowed] if report["namespace"] else walk_grants([allowed], [protected])[0])
    except ConfinementError as error:
        report.update(landlock_abi=0, landlock_error=str(error))
        return report
    results = {
        "inside": _attempt_write(os.path.join(work, "new.txt")),
        "outside": _attempt_write(os.path.join(outside, "new.txt")),
        "run": _attempt_write(os.path.join("run", "new.txt")),  # relative: through the working directory
    }
    expected = {"inside": "ok", "outside": "EACCES", "run": "EROFS" if report["namespace"] else "EACCES"}
    if results != expected:
        report.update(landlock_abi=0, landlock_error=f"the self-test wrote {results}, expected {expected}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    try:
        request = _parse(args)
    except _UsageError as error:
        print(f"aw-tui confine: {error}\n\n{USAGE}", file=sys.stderr)
        return 2
    if request.self_test is not None:
        import json

        print(json.dumps(self_test(request.self_test)))
        return 0
    try:
        apply(request.allow, request.read_only, namespace=request.namespace)
    except (ConfinementError, OSError) as error:
        sys.stderr.write(f"aw-tui: the worker's shell could not be confined ({error}); the command was not run. "
                         f"{NO_LANDLOCK_ENV}=1 runs it unconfined.\n")  # fmt: skip
        return CONFINE_FAILED_EXIT
    # Python ignores SIGPIPE and SIGXFSZ, and ignored signals survive exec: give the shell the defaults back,
    # as subprocess does for the wrapper itself (else `yes | head` ends in "Broken pipe" errors).
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(_signal, name):
            _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
    sys.stdout.flush()
    try:
        os.execvp(request.program[0], request.program)
    except OSError as error:
        sys.stderr.write(f"aw-tui: cannot run {request.program[0]}: {error.strerror}\n")
        return 127
    return 127  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main())
# The wrapper ends here (WRAPPER_END). What follows is the engine's side and its heavier imports.


# ---------------------------------------------------------------------------------------------------------------
# The engine's side: what this machine supports, and the wrapper command for one bash call
# ---------------------------------------------------------------------------------------------------------------

import functools  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402

WRAPPER_END = "# The wrapper ends here (WRAPPER_END)."


def _wrapper_source() -> str:
    """The wrapper's text; "" where this file cannot be read (a zipped install): then the shell is unconfined."""
    try:
        with open(__file__, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return ""
    end = text.find(WRAPPER_END)
    return text[:end] if end > 0 else ""


# Read now, when the engine starts, before any shell has run: the wrapper's text never comes from disk again.
WRAPPER_SOURCE = _wrapper_source()
INTERPRETER = os.path.realpath(sys.executable) if sys.executable else ""
_STDLIB = os.path.realpath(os.path.dirname(os.__file__))


def wrapper_command(*args: str) -> list[str]:
    """The wrapper with `args` (its options, `--`, the program): the real interpreter, isolated, the text in argv."""
    return [INTERPRETER, "-I", "-S", "-c", WRAPPER_SOURCE, *args]


@dataclass(frozen=True)
class Support:
    """What the OS layer can do here. `reason` says why Landlock is missing (landlock_abi 0) or, when only the
    mount namespace is, why that is."""

    landlock_abi: int
    namespace: bool
    reason: str = ""


def system_support(env: Mapping[str, str] | None = None) -> Support:
    """What this machine supports, found by running the wrapper's self-test once per process (a real
    confinement checked with real writes); AW_TUI_NO_LANDLOCK=1 in `env` (default: ours) turns it all off."""
    flag = (os.environ if env is None else env).get(NO_LANDLOCK_ENV, "").strip()
    if flag and flag != "0":
        return Support(0, False, f"{NO_LANDLOCK_ENV}={flag} is set")
    return _probe()


_SCRATCH_PREFIX = "aw-tui-confine-"


def _remove_stale_scratch() -> None:
    """Remove the self-test directories of engines that died during their probe (killed, not cleaned up)."""
    base = tempfile.gettempdir()
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        pid = name[len(_SCRATCH_PREFIX) :].split("-", 1)[0]
        if not name.startswith(_SCRATCH_PREFIX) or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        except OSError:
            pass  # alive under another user: not ours to remove


@functools.lru_cache(maxsize=1)
def _probe() -> Support:
    abi, why = landlock_abi()
    if abi < 1:
        return Support(0, False, why)
    if not INTERPRETER or not WRAPPER_SOURCE:
        what = "Python interpreter" if not INTERPRETER else f"source file ({__file__}) to read the wrapper from"
        return Support(0, False, f"there is no {what} to run the confinement wrapper with")
    _remove_stale_scratch()
    scratch = tempfile.mkdtemp(prefix=f"{_SCRATCH_PREFIX}{os.getpid()}-")
    try:
        done = subprocess.run(
            wrapper_command("--self-test", scratch), capture_output=True, text=True,
            timeout=SELF_TEST_TIMEOUT_S, stdin=subprocess.DEVNULL, cwd=scratch, check=False,
        )  # fmt: skip
        report = json.loads(done.stdout)
    except (OSError, ValueError, subprocess.SubprocessError) as error:
        return Support(0, False, f"the confinement self-test did not run: {error}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not report.get("landlock_abi"):
        return Support(0, False, str(report.get("landlock_error") or "the confinement self-test failed"))
    return Support(int(report["landlock_abi"]), bool(report["namespace"]), str(report.get("namespace_error", "")))


def temp_dirs(env: Mapping[str, str] | None = None) -> list[str]:
    """The temp dirs a shell may write: $TMPDIR (the shell's), Python's, /tmp and /var/tmp, those that exist."""
    candidates = [(env or {}).get("TMPDIR", ""), tempfile.gettempdir(), "/tmp", "/var/tmp"]
    found: list[str] = []
    for path in candidates:
        if path and os.path.isabs(path) and os.path.isdir(path):
            real = os.path.realpath(path)
            if real not in found:
                found.append(real)
    return found


@dataclass(frozen=True)
class ShellConfinement:
    """How one bash call is confined: where it may write, what stays read-only inside that, and whether the
    machine supports it (`support`). `confined` is False when it runs unconfined."""

    support: Support
    workspace: str
    writable: tuple[str, ...] = ()  # trees the shell may write beneath (and single files: device files, its log)
    read_only: tuple[str, ...] = ()  # inside those trees, kept read-only
    temp: tuple[str, ...] = ()  # the temp dirs among `writable`, for the description

    @property
    def confined(self) -> bool:
        return self.support.landlock_abi > 0

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` run through the wrapper, or unchanged when unconfined."""
        if not self.confined:
            return list(argv)
        options = ["--namespace"] if self.support.namespace else []
        for path in self.writable:
            options += ["--allow", path]
        for path in self.read_only:
            options += ["--read-only", path]
        return wrapper_command(*options, "--", *argv)

    def describe(self, run_dir: str) -> tuple[str, str]:
        """(log level, message) saying which layer applies, for the run's event log."""
        if not self.confined:
            return "warning", f"the worker's shell is not confined: {self.support.reason}"
        temp = f" ({', '.join(self.temp)})" if self.temp else ""
        text = f"the worker's shell is confined: writes only under {self.workspace} and temp dirs{temp}"
        run = os.path.realpath(run_dir)
        others = [path for path in self.read_only if path != run]
        if run in self.read_only or not any(_within(run, root) for root in self.writable):
            text += "; the run directory is read-only to it"
        if others:
            text += f"; so are {', '.join(others)}"
        if self.support.namespace:
            return "info", text + f" (Landlock ABI {self.support.landlock_abi}, private mount namespace)"
        text += f" (Landlock ABI {self.support.landlock_abi}; no mount namespace: {self.support.reason})"
        dirs = held_back_dirs([p for p in self.writable if os.path.isdir(p)], self.read_only)
        if not dirs:
            return "info", text
        return "warning", (text + "; to keep those read-only it cannot create, rename or remove entries directly "
                                  f"in {', '.join(dirs)}")  # fmt: skip


def plan(
    support: Support,
    workspace: str,
    *,
    protect: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    extra_files: Iterable[str] = (),
    anywhere: bool = False,
) -> ShellConfinement:
    """The confinement of one bash call in `workspace`: writes under the workspace, the temp dirs and the
    device files (everywhere with `anywhere`), plus `extra_files`; each of `protect` (and the wrapper's own
    interpreter) that exists and lies inside a writable tree stays read-only, unless it holds the workspace or
    a temp dir (it cannot be read-only without them)."""
    root = os.path.realpath(workspace)
    temp = [] if anywhere else [path for path in temp_dirs(env) if not _within(path, root)]
    trees = ["/"] if anywhere else [root, *temp, *(d for d in DEVICE_DIRS if os.path.isdir(d))]
    files = [] if anywhere else [f for f in DEVICE_FILES if os.path.exists(f)]
    files += [os.path.realpath(f) for f in extra_files if os.path.exists(f)]
    read_only: list[str] = []
    # The wrapper's interpreter and standard library run before any confinement: were they inside a writable
    # tree (a conda env in the workspace), a change made by one call would run unconfined at the next.
    for path in (*protect, INTERPRETER, _STDLIB):
        if not os.path.lexists(path):
            continue
        real = os.path.realpath(path)
        if not any(_within(real, tree) for tree in trees) or any(_within(tree, real) for tree in [root, *trees]):
            continue
        if real not in read_only:
            read_only.append(real)
    return ShellConfinement(support=support, workspace=root, writable=tuple(trees + files),
                            read_only=tuple(read_only), temp=tuple(temp))  # fmt: skip

