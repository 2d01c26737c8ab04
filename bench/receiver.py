"""A webhook receiver for the notification benchmark: verifies each
request's X-Churn-Signature, counts requests and events, answers 204.

    python3 bench/receiver.py SECRET PORT_FILE COUNT_FILE

Writes the port it listens on (127.0.0.1, picked by the OS) to PORT_FILE and,
after every request, "<requests> <events> <bad signatures>" to COUNT_FILE.
"""
import hashlib
import hmac
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

secret, port_file, count_file = sys.argv[1].encode(), sys.argv[2], sys.argv[3]
lock = threading.Lock()
counts = {"requests": 0, "events": 0, "bad": 0}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(expected, self.headers.get("X-Churn-Signature", ""))
        with lock:
            counts["requests"] += 1
            counts["bad"] += 0 if ok else 1
            if ok:
                counts["events"] += len(json.loads(body)["events"])
            line = f'{counts["requests"]} {counts["events"]} {counts["bad"]}\n'
            with open(count_file, "w") as f:
                f.write(line)
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file, "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
