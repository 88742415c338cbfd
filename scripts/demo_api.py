#!/usr/bin/env python3
"""The demo's API upstream: a few JSON endpoints, enough to show traffic passing and dropped."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USERS = {"1": {"id": "1", "name": "ada"}, "2": {"id": "2", "name": "grace"}}


class Api(BaseHTTPRequestHandler):
    server_version = "demo-api"
    protocol_version = "HTTP/1.1"
    sys_version = ""

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self._send(200, {"ok": True})
        if self.path.startswith("/users/"):
            user = USERS.get(self.path.rsplit("/", 1)[-1])
            return self._send(200, user) if user else self._send(404, {"error": "no such user"})
        return self._send(404, {"error": "not found"})

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    ThreadingHTTPServer((host, port), Api).serve_forever()
