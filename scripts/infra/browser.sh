# Browser for the UI tests: Debian's chromium + chromium-driver (Playwright drives
# /usr/bin/chromium; `playwright install` is never run). Sourced by scripts/test.sh.

ensure_browser() {
  ensure_packages chromium:/usr/bin/chromium chromium-driver:/usr/bin/chromedriver fonts-dejavu-core:/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
  echo "browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
}
