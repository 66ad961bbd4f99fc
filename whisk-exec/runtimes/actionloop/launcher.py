"""whisk actionloop launcher (kind `blackbox`).

An OpenWhisk *actionloop* proxy for native executables. Towards the platform it speaks the
action runtime protocol (POST /init, POST /run) over HTTP/1.1 on
127.0.0.1:$WHISK_RUNTIME_PORT (0 = any free port), announces the bound port as
`whisk-runtime-port: <port>` on stdout, and exits as soon as stdin (held open by the
platform) reaches EOF, exactly like the other bundled launchers. Standard library only;
meant to be started as `python3 -u actionloop.py`.

Towards the action it manages ONE long-lived child process, started by /init:

* the executable is the `code` text (a script with a `#!` line), or the base64-decoded
  `code` when `binary` is true: either the executable itself or a zip archive whose root
  holds the executable `exec`;
* each /run body is written to the child's stdin as one JSON line; the child answers with
  one JSON line (an object or an array) on file descriptor 3;
* with `OW_WAIT_FOR_ACK` in the environment the child first writes `{"ok":true}` on fd 3;
* the child's stdout and stderr are the launcher's own, so its logs reach the platform;
  after each run the launcher prints the end-of-activation sentinel on both streams (a
  child must flush its output before answering, or its lines land in a later activation);
* the child stays in the launcher's process group: the executor's pause, resume and
  destroy reach it; when stdin closes the launcher kills it before exiting.

Operator knob (launcher environment): WHISK_ACTIONLOOP_ACK_TIMEOUT, seconds to wait for the
acknowledgement (default 60).
"""

import base64
import binascii
import io
import json
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib

from runtime_http import serve, to_json  # beside this file

SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n"

RESULT_FD = 3  # the child's result channel, as in OpenWhisk's actionloop
START_GRACE = 0.05  # seconds a fresh child is watched for an immediate exit (no ack mode)
POLL_INTERVAL = 0.25  # seconds between liveness checks while waiting on fd 3
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or an empty archive


NOT_A_DICT = {"error": "The action did not return a dictionary or array."}
COMMAND_EXITED = {"error": "command exited"}

lock = threading.Lock()  # serialises /init and /run
action = None  # the running Action, once /init has succeeded
child_pid = None  # the current child, for the exit path
null_fd = None  # a spare descriptor on /dev/null (see reserve_result_fd)


class InitError(Exception):
    """An /init failure reported to the platform as 502 {"error": message}."""


# ------------------------------------------------------------------ helpers

def write_sentinels():
    """Mark the end of the activation on both streams."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.write(SENTINEL)
            stream.flush()
        except Exception:
            pass


def note(message):
    """A line of the launcher's own on stderr: it lands in the activation's logs."""
    try:
        sys.stderr.write(f"actionloop: {message}\n")
        sys.stderr.flush()
    except Exception:
        pass


def env_string(value):
    """An /init env value as OpenWhisk stringifies it."""
    if value is None:
        return ""
    return value if isinstance(value, str) else to_json(value)


def exit_status(proc, grace=1.0):
    """The child's exit status, waiting briefly: its fd 3 closes as it exits, a moment before
    the exit is visible."""
    try:
        return proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        return None


def describe_exit(returncode):
    if returncode is None:
        return "closed its result channel (fd 3)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"was killed by signal {name}"
    return f"exited with status {returncode}"


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass  # already gone


# ------------------------------------------------------------------ fd 3
#
# The child must find the write end of the result pipe at descriptor 3. subprocess can keep a
# descriptor open across exec (`pass_fds`) but not renumber it, and renumbering in the child
# (`preexec_fn` + dup2) runs Python code between fork and exec, which is unsafe in this
# threaded server. So descriptor 3 of the launcher is reserved for this purpose: at start-up,
# before any thread, socket or pipe exists, it is pointed at /dev/null (nothing else can ever
# be allocated number 3 afterwards). To spawn, under the /init lock, the pipe's write end is
# dup2'ed onto 3 (atomic; close-on-exec in the launcher), the child is started with
# pass_fds=(3,) (subprocess clears close-on-exec on it in the child only), and 3 is pointed
# back at /dev/null, which also drops the launcher's copy of the write end so that the
# child's exit shows up as EOF. No other thread ever uses descriptor 3, and the launcher
# starts no other process that could inherit it.

def reserve_result_fd():
    global null_fd
    fd = os.open(os.devnull, os.O_RDWR)  # close-on-exec (PEP 446)
    if fd == RESULT_FD:
        null_fd = os.dup(fd)
    else:
        # Whatever might sit at 3 now was inherited and is used by nobody in this process.
        os.dup2(fd, RESULT_FD, inheritable=False)
        null_fd = fd


def spawn(path, env):
    """Starts `path` in its directory with the result pipe at fd 3; returns (Popen, read end)."""
    r, w = os.pipe()
    try:
        os.dup2(w, RESULT_FD, inheritable=False)
    finally:
        os.close(w)
    try:
        proc = subprocess.Popen(
            [path],
            cwd=os.path.dirname(path),
            env=env,
            stdin=subprocess.PIPE,
            pass_fds=(RESULT_FD,),
            # It stays in the launcher's process group (and cgroups): the process executor
            # pauses, resumes and kills a container by signalling that group, which thus
            # covers the child and whatever it starts, even when the launcher itself is
            # SIGKILLed first and cannot clean up.
        )
    except BaseException:
        os.close(r)
        raise
    finally:
        os.dup2(null_fd, RESULT_FD, inheritable=False)
    return proc, r


class LineReader:
    """Lines from the result pipe, watching the child while waiting."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = bytearray()
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN)

    def readline(self, alive, timeout=None):
        """The next line without its newline; None at EOF or when the child is gone and
        nothing is left to read; TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else _now() + timeout
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line = bytes(self.buf[:end])
                del self.buf[: end + 1]
                return line
            wait = POLL_INTERVAL
            if deadline is not None:
                wait = max(0.0, min(wait, deadline - _now()))
            if self.poller.poll(wait * 1000):
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    return None  # every write end is closed: the child exited
                self.buf += chunk
                continue
            if not alive():
                # The child is gone, but a process it started may still hold fd 3 open.
                if self.poller.poll(0):
                    continue
                return None
            if deadline is not None and _now() >= deadline:
                raise TimeoutError

    def close(self):
        try:
            os.close(self.fd)
        except OSError:
            pass


def _now():
    return time.monotonic()


# ------------------------------------------------------------------ the action's files

def refuse(name, why="would be extracted outside the action directory"):
    raise InitError(f"Invalid action archive: entry '{name}' {why}.")


def inside(path, root):
    return path == root or path.startswith(root + os.sep)


def entry_parts(name):
    """The path components of a zip entry; refuses entries that could escape."""
    if "\0" in name:
        refuse(name, "has an invalid name")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        refuse(name)  # absolute
    if any(part == ".." for part in re.split(r"[/\\]", name)):
        refuse(name)
    return [part for part in name.split("/") if part not in ("", ".")]


def write_file(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        if isinstance(data, bytes):
            f.write(data)
        else:
            shutil.copyfileobj(data, f)
    os.chmod(path, mode)


def extract(data, root):
    """Extracts a zip archive into `root`, refusing anything that would land outside it.

    All names are checked before anything is written; regular files and directories are
    written before any symbolic link exists (so no write can pass through one); each link
    is checked when made, and all of them again at the end (a later link can change where
    an earlier one leads)."""
    real_root = os.path.realpath(root)
    current = None  # the entry being written, for error messages
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = [(info, entry_parts(info.filename)) for info in archive.infolist()]
            links = []
            for info, parts in entries:
                if not parts:
                    continue  # the root itself
                current = info.filename
                target = os.path.join(root, *parts)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    links.append((info, target))
                elif info.is_dir() or stat.S_ISDIR(mode):
                    os.makedirs(target, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    perms = 0o755 if mode & 0o111 else 0o644
                    with archive.open(info) as src:
                        write_file(target, src, perms)
            for info, target in links:
                current = info.filename
                link = archive.read(info).decode("utf-8")
                if not link or "\0" in link or os.path.isabs(link):
                    refuse(info.filename, "is a symbolic link pointing outside the action directory")
                if not inside(os.path.realpath(os.path.dirname(target)), real_root):
                    refuse(info.filename)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.symlink(link, target)
                if not inside(os.path.realpath(target), real_root):
                    refuse(info.filename, "is a symbolic link pointing outside the action directory")
            for info, target in links:
                if not inside(os.path.realpath(target), real_root):
                    refuse(info.filename, "is a symbolic link pointing outside the action directory")
    except InitError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as ex:
        raise InitError(f"Invalid action archive: {ex or type(ex).__name__}") from None
    except OSError as ex:  # no paths in the message: they are the platform's, not the action's
        raise InitError(
            f"Cannot extract the action archive: entry '{current}': {ex.strerror or ex}"
        ) from None
    except (NotImplementedError, RuntimeError, UnicodeDecodeError, ValueError) as ex:
        raise InitError(f"Cannot extract the action archive: {ex}") from None


def materialise(value, root):
    """Writes the action's executable under `root` and returns its path."""
    code = value["code"]
    exe = os.path.join(root, "exec")
    if value.get("binary") is True:
        try:
            data = base64.b64decode(code)  # skips line breaks and other non-alphabet bytes
        except (binascii.Error, ValueError) as ex:
            raise InitError(f"The action code is not valid base64: {ex}") from None
        if data[:4] in ZIP_MAGIC:
            extract(data, root)
            if not os.path.isfile(exe) or not inside(os.path.realpath(exe), os.path.realpath(root)):
                raise InitError(
                    "Missing exec: the action archive has no executable file 'exec' at its root."
                )
            os.chmod(exe, stat.S_IMODE(os.stat(exe).st_mode) | 0o755)
            return exe
    else:
        data = code.encode("utf-8")
    try:
        write_file(exe, data, 0o755)
    except OSError as ex:
        raise InitError(f"Cannot write the action executable: {ex.strerror or ex}") from None
    return exe


# ------------------------------------------------------------------ the child

class Action:
    """The running child and its pipes."""

    def __init__(self, proc, reader):
        self.proc = proc
        self.reader = reader
        self.exited = False

    def alive(self):
        return self.proc.poll() is None

    def run(self, msg):
        if self.exited:
            return 502, COMMAND_EXITED
        line = (to_json(msg) + "\n").encode()  # json.dumps escapes every newline in strings
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (OSError, ValueError):
            return self.died()
        answer = self.reader.readline(self.alive)
        if answer is None:
            return self.died()
        try:
            result = json.loads(answer, parse_constant=_reject_constant)
            if isinstance(result, (dict, list)):
                return 200, to_json(result, allow_nan=False).encode()
        except (ValueError, RecursionError):
            pass
        return 502, NOT_A_DICT

    def died(self):
        """The child exited or closed fd 3: the proxy is dead for good."""
        global child_pid
        self.exited = True
        try:
            self.proc.wait(0.2)  # EOF on fd 3 may come a moment before the exit status
        except subprocess.TimeoutExpired:
            pass
        note(f"the action's process {describe_exit(self.proc.returncode)}.")
        self.stop()
        child_pid = None
        return 502, COMMAND_EXITED

    def stop(self):
        kill(self.proc.pid)  # if it only closed fd 3; what it started dies with the container
        try:
            self.proc.stdin.close()
        except Exception:
            pass
        try:
            self.proc.wait()
        except Exception:
            pass
        self.reader.close()


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def ack_timeout():
    try:
        return max(0.0, float(os.environ.get("WHISK_ACTIONLOOP_ACK_TIMEOUT") or 60))
    except ValueError:
        return 60.0


def start(value):
    """Writes the executable, starts it, waits for its acknowledgement if asked to."""
    global child_pid
    root = tempfile.mkdtemp(prefix="action-", dir=os.getcwd())
    started = None
    try:
        exe = materialise(value, root)
        env = dict(os.environ)
        env.pop("WHISK_RUNTIME_PORT", None)
        init_env = value.get("env")
        if isinstance(init_env, dict):
            for key, val in init_env.items():
                key, val = str(key), env_string(val)
                if key and "=" not in key and "\0" not in key and "\0" not in val:
                    env[key] = val
        try:
            proc, fd = spawn(exe, env)
        except OSError as ex:
            raise InitError(f"Cannot start the action executable: {ex.strerror or ex}") from None
        started = Action(proc, LineReader(fd))
        child_pid = proc.pid
        if env.get("OW_WAIT_FOR_ACK"):
            limit = ack_timeout()
            try:
                ack = started.reader.readline(started.alive, limit)
            except TimeoutError:
                raise InitError(
                    f"The action did not acknowledge its start on fd 3 within {limit:g} seconds."
                ) from None
            if ack is None:
                raise InitError(
                    f"The action {describe_exit(exit_status(proc))} before acknowledging its start."
                )
            try:
                ok = json.loads(ack).get("ok") is True
            except (ValueError, AttributeError):
                ok = False
            if not ok:
                text = ack.decode("utf-8", "replace")[:200]
                raise InitError(f'The action acknowledged its start with {text!r}, not {{"ok":true}}.')
        else:
            try:
                proc.wait(START_GRACE)
            except subprocess.TimeoutExpired:
                pass
            else:
                raise InitError(f"The action {describe_exit(proc.returncode)} during initialization.")
        return started
    except BaseException:
        if started is not None:
            started.stop()
        child_pid = None
        shutil.rmtree(root, ignore_errors=True)
        raise


# ------------------------------------------------------------------ handlers

def handle_init(msg):
    global action
    with lock:
        if action is not None:
            return 403, {"error": "Cannot initialize the action more than once."}
        value = msg.get("value")
        value = value if isinstance(value, dict) else {}
        if not isinstance(value.get("code"), str) or not value["code"]:
            return 403, {"error": "Missing main/no code to execute."}
        try:
            action = start(value)
        except InitError as ex:
            write_sentinels()
            return 502, {"error": str(ex)}
        except Exception as ex:  # a bug or an unexpected OS failure: still an init failure
            write_sentinels()
            return 502, {"error": f"Initialization has failed due to: {type(ex).__name__}: {ex}"}
        return 200, {"ok": True}


def handle_run(msg):
    with lock:
        if action is None:
            return 403, {"error": "System not ready."}
        status, body = action.run(msg)
        write_sentinels()
        return status, body


def on_exit():
    """The platform went away: kill the child (and, leading our own process group, it all)."""
    pid = child_pid  # not under the lock: a /run may be blocked on the child
    if pid:
        kill(pid)
        if os.getpgrp() == os.getpid():
            # Leading a process group of our own (as the process executor starts us): take
            # down whatever else the child started, and ourselves with it.
            os.killpg(0, signal.SIGKILL)


def main():
    reserve_result_fd()  # first: nothing else may ever get descriptor 3
    serve({"/init": handle_init, "/run": handle_run}, on_exit)


if __name__ == "__main__":
    main()
