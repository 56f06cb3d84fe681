#!/usr/bin/env python3
"""A small HTTP file server for the update tests, on 127.0.0.1 with an ephemeral port.

It answers GET with the file under --dir, honouring `Range: bytes=N-` with 206 and
Content-Range (Python's own http.server ignores Range). Faults the tests need:
- a file `<name>.cut` holding a number K: the next answer for `<name>` sends K bytes of the
  body (counted from where the range starts) and closes the connection; the .cut file is removed;
- --no-range: answer every request with the whole file (200), as a server without Range would.
Every request is logged to --log as `<path> <range header or ->`.
"""
import argparse
import http.server
import os
import socketserver


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--no-range", action="store_true")
    args = ap.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            name = os.path.basename(self.path.split("?")[0])
            path = os.path.join(args.dir, name)
            rng = self.headers.get("Range")
            with open(args.log, "a") as log:
                log.write(f"{self.path} {rng or '-'}\n")
            if not name or not os.path.isfile(path):
                self.send_error(404)
                return
            size = os.path.getsize(path)
            start = 0
            if rng and not args.no_range and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[6:-1])
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Type", "application/vnd.debian.binary-package")
            self.send_header("Content-Length", str(size - start))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            cut = None
            cut_file = path + ".cut"
            if os.path.exists(cut_file):
                cut = int(open(cut_file).read().strip())
                os.remove(cut_file)
            with open(path, "rb") as f:
                f.seek(start)
                left = size - start if cut is None else min(cut, size - start)
                while left > 0:
                    chunk = f.read(min(65536, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
            if cut is not None:
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

    srv = Server(("127.0.0.1", 0), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
