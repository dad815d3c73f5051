#!/usr/bin/python3
"""Drives a headless Chromium over the DevTools protocol, one command a line.

The dashboard end-to-end test (tests/e2e/test_dashboard.sh) runs this as a
bash coprocess: it writes a command on a line and reads one answer line, so
that the browser keeps the same page open while the test fails a VM in the
cluster, and the test can then check that the page changed without a reload.

Commands (answers start with "ok" or "err"):
  open URL            navigate and wait for the load event   -> ok
  eval JS             evaluate an expression (one line)     -> ok <JSON value>
  wait SECS JS        until JS is truthy, polled every 0.1s  -> ok <JSON value>
                                                                | err timeout <last value>
  shot FILE           full-page PNG screenshot               -> ok <bytes>
  errors              JS exceptions and console errors since the last
                      "errors" (the list is then emptied)     -> ok <JSON list>
  quit                close the browser and exit             -> ok

Only Debian packages are needed: chromium and python3 (the WebSocket client
below is a minimal RFC 6455 one over the standard library, since Debian's
python3 has none built in). The browser is started with --no-sandbox because
the tests run as root, in a fresh profile that is deleted on exit.
"""
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request


class WebSocket:
    """Just enough of a WebSocket client for the DevTools protocol."""

    def __init__(self, url, timeout=30):
        assert url.startswith("ws://"), url
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port or 80)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key))
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise IOError("WebSocket handshake: connection closed")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise IOError("WebSocket handshake refused: %r" % head.split(b"\r\n")[0])

    def _read(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise IOError("WebSocket closed")
            out += chunk
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self):
        """The next whole text message (continuations joined; pings answered)."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if opcode == 0x8:
                raise IOError("WebSocket closed by the browser")
            if opcode == 0x9:
                self._send_frame(0xA, data)
                continue
            if opcode in (0x1, 0x2, 0x0):
                parts.append(data)
                if b0 & 0x80:
                    return b"".join(parts).decode()

    def close(self):
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class Browser:
    def __init__(self):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if not exe:
            raise IOError("chromium is not installed (apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="kvr-chromium.")
        self.log = open(os.path.join(self.profile, "chromium.log"), "w")
        self.proc = subprocess.Popen(
            [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--hide-scrollbars", "--window-size=1400,1000", "--remote-debugging-port=0",
             "--user-data-dir=" + self.profile, "about:blank"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        # Chromium writes the port it chose to DevToolsActivePort.
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 60
        port = None
        while time.time() < deadline and port is None:
            if self.proc.poll() is not None:
                raise IOError("chromium exited (%s); see its log" % self.proc.returncode)
            try:
                with open(port_file) as f:
                    port = int(f.readline().strip())
            except (OSError, ValueError):
                time.sleep(0.1)
        if port is None:
            raise IOError("chromium did not open its DevTools port within 60s")
        targets = []
        while time.time() < deadline and not targets:
            with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=10) as r:
                targets = [t for t in json.load(r) if t.get("type") == "page"]
            if not targets:
                time.sleep(0.1)
        self.ws = WebSocket(targets[0]["webSocketDebuggerUrl"])
        self.next_id = 0
        self.errors = []
        self.loaded = False
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Log.enable")

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            event = msg.get("method")
            if event == "Page.loadEventFired":
                self.loaded = True
            elif event == "Runtime.exceptionThrown":
                d = msg["params"]["exceptionDetails"]
                self.errors.append(d.get("exception", {}).get("description") or d.get("text"))
            elif event == "Runtime.consoleAPICalled" and msg["params"].get("type") == "error":
                self.errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                            for a in msg["params"].get("args", [])))
            elif event == "Log.entryAdded" and msg["params"]["entry"].get("level") == "error":
                e = msg["params"]["entry"]
                self.errors.append("%s (%s)" % (e.get("text"), e.get("url", "")))
            if msg.get("id") == mid:
                if "error" in msg:
                    raise IOError("%s: %s" % (method, msg["error"].get("message")))
                return msg.get("result", {})

    def eval(self, js):
        r = self.call("Runtime.evaluate", expression=js, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise IOError("JS exception: %s" % (d.get("exception", {}).get("description") or
                                               d.get("text")))
        return r.get("result", {}).get("value")

    def open(self, url):
        self.loaded = False
        r = self.call("Page.navigate", url=url)
        if r.get("errorText"):
            raise IOError("navigate %s: %s" % (url, r["errorText"]))
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.eval("document.readyState") == "complete":
                return
            time.sleep(0.1)
        raise IOError("page did not finish loading in 30s")

    def shot(self, path):
        m = self.call("Page.getLayoutMetrics")
        size = m.get("cssContentSize") or m.get("contentSize")
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        r = self.call("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
        data = base64.b64decode(r["data"])
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    def close(self):
        try:
            self.call("Browser.close")
        except (OSError, IOError):
            pass
        try:
            self.ws.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        if os.environ.get("KVR_KEEP_LOGS"):
            sys.stderr.write("# chromium profile and log kept in %s\n" % self.profile)
        else:
            shutil.rmtree(self.profile, ignore_errors=True)


def answer(line):
    sys.stdout.write(line.replace("\n", " ") + "\n")
    sys.stdout.flush()


def main():
    try:
        browser = Browser()
    except Exception as e:  # noqa: BLE001 - every failure is one answer line
        answer("err cannot start chromium: %s" % e)
        return 1
    answer("ok started")
    try:
        for line in sys.stdin:
            cmd, _, arg = line.rstrip("\n").partition(" ")
            try:
                if cmd == "open":
                    browser.open(arg)
                    answer("ok")
                elif cmd == "eval":
                    answer("ok " + json.dumps(browser.eval(arg)))
                elif cmd == "wait":
                    secs, _, js = arg.partition(" ")
                    deadline = time.time() + float(secs)
                    value = None
                    while True:
                        value = browser.eval(js)
                        if value:
                            answer("ok " + json.dumps(value))
                            break
                        if time.time() > deadline:
                            answer("err timeout " + json.dumps(value))
                            break
                        time.sleep(0.1)
                elif cmd == "shot":
                    answer("ok %d" % browser.shot(arg))
                elif cmd == "errors":
                    browser.eval("0")  # collects the events queued so far
                    answer("ok " + json.dumps(browser.errors))
                    browser.errors = []
                elif cmd == "quit":
                    answer("ok")
                    break
                else:
                    answer("err unknown command %r" % cmd)
            except Exception as e:  # noqa: BLE001
                answer("err %s" % e)
    finally:
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
