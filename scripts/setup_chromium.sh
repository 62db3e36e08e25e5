#!/bin/sh
# Make a Chromium available for the site's browser test (tests/test_site.py, run by `make test`).
# Does nothing when one is found (CHROMIUM, or chromium on the PATH); otherwise installs the Debian package
# chromium when apt-get can run (as root, or with password-less sudo). Otherwise it prints what to do and exits 0:
# the browser test then skips and says why.
found() { [ -n "$CHROMIUM" ] && [ -x "$CHROMIUM" ] || command -v chromium >/dev/null 2>&1; }
found && exit 0
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" != none ]; then
    echo "Chromium not found: installing the Debian package chromium (about 100 MB) for the site's browser test"
    $SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
      { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium >/dev/null 2>&1; }
    found && { echo "Chromium installed: $(command -v chromium)"; exit 0; }
  fi
fi
echo "Chromium is not available and could not be installed here; the site's browser test will be skipped."
echo "Any one of these makes it available:"
echo "  sudo apt-get install -y chromium                          (Debian; Ubuntu's package needs snap)"
echo "  export CHROMIUM=/path/to/chromium-or-chrome               (any Chromium or Chrome build)"
exit 0
