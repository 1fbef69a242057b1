"""A page opened in headless Chromium (Debian's ``chromium``, which ``make browser`` installs): its screenshot, and
what the browser made of it -- every image decoded or not, every console error or failed load, the DOM's text.

A probe script is appended to a copy of the page; it records console.error / console.warn calls, uncaught errors
and resources that failed to load, then, once the page has loaded, writes the images' decoded sizes and those
errors into the DOM, which ``--dump-dom`` prints.
"""

import html
import json
import os
import re
import shutil
import subprocess
from typing import Any, Dict

PROBE = """
<script>
(function () {
  var errors = [];
  ["error", "warn"].forEach(function (level) {
    var original = console[level];
    console[level] = function () { errors.push(level + ": " + Array.prototype.join.call(arguments, " "));
                                   original.apply(console, arguments); };
  });
  window.addEventListener("error", function (event) {
    var target = event.target || {};
    errors.push(target.src ? "failed to load " + target.src.slice(0, 60) : "error: " + event.message);
  }, true);
  window.addEventListener("load", function () {
    var images = Array.prototype.map.call(document.images, function (image) {
      return {src: image.getAttribute("src").slice(0, 30), width: image.naturalWidth, height: image.naturalHeight,
              alt: image.alt};
    });
    var out = document.createElement("pre");
    out.id = "tfdet-probe";
    out.style.display = "none";  // the screenshot shows the page as it is
    out.textContent = JSON.stringify({images: images, errors: errors});
    document.body.appendChild(out);
  });
})();
</script>
"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-extensions", "--disable-sync", "--hide-scrollbars", "--mute-audio",
         "--virtual-time-budget=10000"]


def chromium() -> str:
    """The browser's path; fails with the command that installs it."""
    found = shutil.which("chromium")
    if not found:
        raise RuntimeError("chromium is not installed: run `make browser` (apt-get install chromium)")
    return found


def open_page(html_path: str, out_dir: str, width: int = 1200, height: int = 2400) -> Dict[str, Any]:
    """Opens ``html_path`` in headless Chromium: ``screenshot`` (PNG path), ``images`` (each <img>'s decoded
    size), ``errors`` (console errors and warnings, failed loads) and ``dom`` (the page after loading)."""
    with open(html_path) as handle:
        page = handle.read()
    probed = os.path.join(out_dir, "probed.html")
    with open(probed, "w") as handle:
        handle.write(page.replace("</body>", PROBE + "</body>"))
    url = "file://" + os.path.abspath(probed)
    home = os.path.join(out_dir, "chromium-profile")
    common = [chromium(), *FLAGS, f"--user-data-dir={home}", f"--window-size={width},{height}"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=True).stdout
    screenshot = os.path.join(out_dir, "screenshot.png")
    subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True, timeout=180, check=True)
    found = re.search(r'<pre id="tfdet-probe"[^>]*>(.*?)</pre>', dom, re.S)
    assert found, f"the page did not finish loading in Chromium: {dom[-500:]}"
    probe = json.loads(html.unescape(found.group(1)))
    return {"screenshot": screenshot, "dom": dom, **probe}
