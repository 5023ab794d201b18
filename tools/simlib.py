"""Plumbing shared by the simulators in tools/ (mesos-sim, marathon-sim).

Each simulator is a set of HTTP servers on 127.0.0.1 (ports chosen by the kernel) over
one shared, lock-protected state. This module gives them:

* HttpError: raise it from a route to answer with a status, a body and headers;
* Faults: the knobs every simulator has (latency, injected failures, hangs, answers
  swallowed after a POST or PUT was applied), set through POST /__sim/control;
* Handler: a BaseHTTPRequestHandler that reads the body, applies the faults and turns
  HttpError into a reply; subclasses implement route(method, body);
* serve() and run(): start servers, print the endpoints line, wait for SIGTERM/SIGINT.
"""

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HttpError(Exception):
    def __init__(self, status, body="", headers=None):
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = headers or {}


class Faults:
    """Injected misbehaviour. Read and changed under the owner's lock."""

    def __init__(self):
        self.latency_ms = 0
        self.fail = None        # {"status": 500, "count": N, "body": "..."}
        self.hang = 0           # the next N requests get no answer and are not applied
        self.swallow_posts = 0  # the next N successful POSTs/PUTs are applied, then get no answer

    def control(self, change):
        if "latency_ms" in change:
            self.latency_ms = int(change["latency_ms"])
        if "fail" in change:
            self.fail = dict(change["fail"]) if change["fail"] else None
        if "hang" in change:
            self.hang = int(change["hang"])
        if "swallow_posts" in change:
            self.swallow_posts = int(change["swallow_posts"])


def parse_json(body, what):
    try:
        return json.loads(body.decode() or "null")
    except (ValueError, UnicodeDecodeError) as error:
        raise HttpError(400, what + str(error))


class Handler(BaseHTTPRequestHandler):
    """Subclasses set `state` (an object with `lock` and `faults`) and define route()."""

    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", content_type=None, headers=None):
        state = self.state
        if self.command in ("POST", "PUT") and status == 200 and not self.path.startswith("/__sim"):
            with state.lock:
                swallow = state.faults.swallow_posts > 0
                if swallow:
                    state.faults.swallow_posts -= 1
            if swallow:
                self.swallowed = True  # applied; handle_any then keeps the client waiting
                return
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            content_type = content_type or "application/json"
        elif isinstance(body, str):
            body = body.encode()
            if body:
                content_type = content_type or "text/plain; charset=utf-8"
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def handle_any(self, method):
        body = self.read_body()
        self.swallowed = False
        try:
            if not self.path.startswith("/__sim") and self.apply_faults():
                return
            self.route(method, body)
            if self.swallowed:
                time.sleep(3600)  # outside the state lock: the others go on
        except HttpError as error:
            self.reply(error.status, error.body, headers=error.headers)
        except BrokenPipeError:
            pass

    def apply_faults(self):
        """Latency, injected failures and hangs; True when the request was answered."""
        state = self.state
        with state.lock:
            faults = state.faults
            latency = faults.latency_ms
            fail = faults.fail
            if fail and fail["count"] > 0:
                fail["count"] -= 1
            else:
                fail = None
            hang = faults.hang > 0
            if hang:
                faults.hang -= 1
        if latency:
            time.sleep(latency / 1000.0)
        if hang:
            time.sleep(3600)
            return True
        if fail:
            self.reply(fail["status"], fail.get("body", "Service Unavailable"))
            return True
        return False


def method_check(method, allowed):
    if method not in allowed:
        raise HttpError(405, "405 Method Not Allowed. Expecting one of { " + ", ".join("'" + m + "'" for m in allowed) +
                        " }, but received '" + method + "'.", {"Allow": ", ".join(allowed)})


def serve(handler_class, **attributes):
    """An HTTP server on 127.0.0.1:<free port> in a thread of its own."""
    handler = type(handler_class.__name__, (handler_class,), attributes)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def url(server):
    return "http://127.0.0.1:%d" % server.server_address[1]


def load_spec(program):
    if len(sys.argv) != 2:
        sys.stderr.write("usage: " + program + " CLUSTER.json\n")
        sys.exit(2)
    try:
        with open(sys.argv[1]) as spec_file:
            return json.load(spec_file)
    except (OSError, ValueError) as error:
        sys.stderr.write(program + ": cannot read " + sys.argv[1] + ": " + str(error) + "\n")
        sys.exit(2)


def run(servers, endpoints):
    """Prints the endpoints as one JSON line, then serves until SIGTERM or SIGINT."""
    sys.stdout.write(json.dumps(endpoints) + "\n")
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for server in servers:
        server.shutdown()
    return 0
