"""The HTTP side shared by whisk's Python launchers (python:3.11, actionloop).

`serve(routes, on_exit)` serves the listening socket it inherits on descriptor
$WHISK_RUNTIME_LISTEN_FD when that is set (and prints `whisk-runtime-socket: fd <n>` on
stdout), else listens on 127.0.0.1:$WHISK_RUNTIME_PORT
(0 = any free port; it prints `whisk-runtime-port: <port>`), answers POST requests to `routes`
(path -> handler(msg) -> (status, payload)) with JSON, and calls `on_exit` then exits when
stdin (held open by the platform) reaches end of file. Standard library only.
"""

import json
import os
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def to_json(value, **options):
    """Compact JSON text (same spacing as JavaScript's JSON.stringify)."""
    return json.dumps(value, separators=(",", ":"), **options)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True
    routes = {}  # path -> handler(msg) -> (status, payload); set by serve()

    def log_message(self, *args):
        pass  # stdout/stderr belong to the action

    def reply(self, status, payload):
        body = payload if isinstance(payload, bytes) else to_json(payload).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0], 16)
                if size < 0:
                    raise ValueError("negative chunk size")
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # skip trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length)

    def do_POST(self):
        try:
            raw = self.read_body()  # always consumed, to keep the connection in sync
        except ValueError:
            self.close_connection = True
            return self.reply(400, {"error": "Malformed request body framing."})
        route = self.routes.get(self.path.split("?", 1)[0]) if self.command == "POST" else None
        if route is None:
            return self.reply(404, {"error": "not found"})
        try:
            msg = json.loads(raw)
        except ValueError as ex:
            return self.reply(400, {"error": f"Invalid JSON request body: {ex}"})
        if not isinstance(msg, dict):
            return self.reply(400, {"error": "The request body must be a JSON object."})
        self.reply(*route(msg))

    do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST  # all 404


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        pass  # never print tracebacks; the connection is simply closed


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # as Server


class UnixHandler(Handler):
    disable_nagle_algorithm = False  # no TCP options on a unix socket


def watch_stdin(on_exit):
    """The platform holds our stdin open; EOF (or an error) means it went away."""
    try:
        while os.read(0, 65536):
            pass
    except OSError:
        pass
    if on_exit is not None:
        on_exit()
    os._exit(0)


def serve(routes, on_exit=None):
    """Serves `routes` until stdin closes (see the module documentation). As a container
    image (`WHISK_RUNTIME_IMAGE=1`) it listens on every interface and runs until stopped."""
    Handler.routes = dict(routes)
    in_image = os.environ.get("WHISK_RUNTIME_IMAGE") == "1"
    if not in_image:
        threading.Thread(target=watch_stdin, args=(on_exit,), name="stdin-watch", daemon=True).start()
    listen_fd = "" if in_image else os.environ.get("WHISK_RUNTIME_LISTEN_FD", "")
    if listen_fd:
        server = UnixServer(None, UnixHandler, bind_and_activate=False)
        server.socket.close()
        server.socket = socket.socket(fileno=int(listen_fd))
        sys.stdout.write(f"whisk-runtime-socket: fd {listen_fd}\n")
    else:
        host = "0.0.0.0" if in_image else "127.0.0.1"
        server = Server((host, int(os.environ.get("WHISK_RUNTIME_PORT") or 0)), Handler)
        if not in_image:
            sys.stdout.write(f"whisk-runtime-port: {server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()
