"""whisk Python action launcher.

Speaks the OpenWhisk action runtime protocol (POST /init, POST /run) over
HTTP/1.1 on the unix socket $WHISK_RUNTIME_SOCKET or 127.0.0.1:$WHISK_RUNTIME_PORT
(see runtime_http.py), announces where on stdout, and exits as soon as
stdin (held open by the platform) reaches EOF. Standard library only; meant to
be started as `python3 -u launcher.py`.
"""

import base64
import io
import os
import sys
import tempfile
import threading
import zipfile

from runtime_http import serve, to_json  # beside this file

SENTINEL = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n"


NOT_A_DICT = to_json({"error": "The action did not return a dictionary or array."}).encode()

lock = threading.Lock()  # serialises /init and /run
action = None  # the entry callable, once /init has succeeded


# ------------------------------------------------------------------ helpers

def describe(ex):
    """`Type: message` for an exception, never raising."""
    try:
        return f"{type(ex).__name__}: {ex}"
    except Exception:
        return type(ex).__name__


def write_sentinels():
    """Flush user output, then mark the end of the activation on both streams."""
    for current, original in ((sys.stdout, sys.__stdout__), (sys.stderr, sys.__stderr__)):
        try:
            current.flush()  # the action may have swapped in its own stream
        except Exception:
            pass
        try:
            original.write(SENTINEL)
            original.flush()
        except Exception:
            pass


def exit_process(ex):
    """Terminate the whole process like an uncaught SystemExit would."""
    code = ex.code
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): print it and exit with 1, as Python does
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(status)


# ------------------------------------------------------------------ loading

def exec_entry(source, filename, name, extra=None):
    """Execute source in a fresh namespace and return its callable `name`."""
    namespace = {"__name__": "__main__", **(extra or {})}
    exec(compile(source, filename, "exec"), namespace)
    entry = namespace.get(name)
    if not callable(entry):
        raise NameError(f"The action entry point '{name}' is not a function.")
    return entry


def load_zip(data, name):
    """Extract a zip archive to a temp dir and load `__main__.py` from it."""
    root = tempfile.mkdtemp(prefix="whisk-action-")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            target = archive.extract(info, root)  # sanitises the member path
            mode = (info.external_attr >> 16) & 0o777
            if mode & 0o111 and not info.is_dir():
                os.chmod(target, mode)  # zipfile drops permissions; keep +x bits
    entry = os.path.join(root, "__main__.py")
    if not os.path.isfile(entry):
        raise FileNotFoundError("The action archive has no __main__.py at its root.")
    sys.path.insert(0, root)
    with open(entry, "rb") as f:
        source = f.read()
    return exec_entry(source, entry, name, {"__file__": entry})


def load(value):
    name = value.get("main") or "main"
    env = value.get("env")
    if isinstance(env, dict):
        for key, val in env.items():
            os.environ[str(key)] = val if isinstance(val, str) else to_json(val)
    code = value["code"]
    if value.get("binary") is True:
        data = base64.b64decode(code)
        if data[:4] == b"PK\x03\x04":
            return load_zip(data, name)
        code = data.decode("utf-8")  # not a zip: treat as source text
    return exec_entry(code, "<action>", name)


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
            action = load(value)
        except SystemExit as ex:
            exit_process(ex)
        except BaseException as ex:
            write_sentinels()
            return 502, {"error": f"Initialization has failed due to: {describe(ex)}"}
        return 200, {"ok": True}


def encode_result(result):
    """Serialise a dict/list result; anything else is a 502."""
    if isinstance(result, (dict, list)):
        try:
            return 200, to_json(result, allow_nan=False).encode()
        except Exception:
            pass
    return 502, NOT_A_DICT


def handle_run(msg):
    with lock:
        if action is None:
            return 403, {"error": "System not ready."}
        for key, val in msg.items():
            if key != "value":
                try:
                    os.environ["__OW_" + key.upper()] = val if isinstance(val, str) else to_json(val)
                except ValueError:
                    pass  # not representable as an environment variable
        if "api_key" not in msg:
            os.environ.pop("__OW_API_KEY", None)
        args = msg.get("value")
        try:
            status, body = encode_result(action({} if args is None else args))
        except SystemExit as ex:
            exit_process(ex)
        except BaseException as ex:
            try:
                text = str(ex)
            except Exception:
                text = describe(ex)
            status, body = 200, to_json({"error": text}).encode()
        write_sentinels()
        return status, body


def main():
    serve({"/init": handle_init, "/run": handle_run})


if __name__ == "__main__":
    main()
