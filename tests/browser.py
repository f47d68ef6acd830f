"""Loading a page in headless Chromium (Debian's package) and asking it what loaded, over the
DevTools protocol. Used by the report page tests.
    results, screenshot_png = inspect_page(Path("checkpoints/x/index.html"))
"""
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--remote-allow-origins=*", "--autoplay-policy=no-user-gesture-required",
                  "--window-size=1200,1600"]

# Waits until every <img> and <video> has loaded or failed, then reports each.
MEDIA_CHECK = """
new Promise(resolve => {
  const media = [...document.images, ...document.querySelectorAll('video')];
  const settled = el => el.tagName === 'IMG' ? el.complete : (el.readyState >= 2 || el.error);
  const report = () => resolve(JSON.stringify(media.map(el => ({
    tag: el.tagName, src: el.getAttribute('src'),
    ok: el.tagName === 'IMG' ? el.complete && el.naturalWidth > 0 : !el.error && el.readyState >= 2 && el.videoWidth > 0}))));
  const start = Date.now();
  const poll = () => (media.every(settled) || Date.now() - start > 20000) ? report() : setTimeout(poll, 100);
  media.filter(el => el.tagName === 'VIDEO').forEach(v => v.load());
  poll();
})
"""


def chromium():
    """The Chromium binary, or a skip (a failure where VGAN_REQUIRE_BROWSER is set, as in CI)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("VGAN_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


class DevTools:
    def __init__(self, ws_url):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def wait_event(self, name, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if json.loads(self.ws.recv()).get("method") == name:
                return
        raise TimeoutError(name)


def inspect_page(path):
    """([{tag, src, ok}, ...] for every image and video on the page, PNG screenshot bytes)."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                 "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            port = None
            deadline = time.time() + 60
            while port is None and time.time() < deadline:
                line = proc.stderr.readline()
                found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
                port = found and found.group(1)
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
            page = DevTools(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
            page.call("Page.enable")
            page.call("Page.navigate", url=path.resolve().as_uri())
            page.wait_event("Page.loadEventFired")
            value = page.call("Runtime.evaluate", expression=MEDIA_CHECK, awaitPromise=True, returnByValue=True)
            media = json.loads(value["result"]["value"])
            shot = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
            return media, shot
        finally:  # Chromium's helper processes share its session: stop them all before the profile goes
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
