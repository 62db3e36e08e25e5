#!/bin/sh
# Make the official Fashion-MNIST files available for the mini profile (`make demo`, `gifkit mini`).
# Does nothing when gifkit already finds them; otherwise installs the Debian/Ubuntu package
# dataset-fashion-mnist (files under /usr/share/datasets/fashion-mnist) when apt-get can run
# (as root, or with password-less sudo). Otherwise it prints what to do and exits 0: `gifkit demo`
# then says the same and falls back to the smoke demo.
PY=${PY:-.venv/bin/python}
found() { "$PY" -c "from gifkit.data.fashion import find_files; find_files('fashion-mnist', 'train'); find_files('fashion-mnist', 'test')" 2>/dev/null; }
found && exit 0
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" != none ]; then
    echo "Fashion-MNIST not found: installing the Debian package dataset-fashion-mnist (30 MB)"
    $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
      { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }
    found && { echo "Fashion-MNIST installed under /usr/share/datasets/fashion-mnist"; exit 0; }
  fi
fi
echo "Fashion-MNIST is not available and could not be installed here. Any one of these makes it available:"
echo "  sudo apt-get install -y dataset-fashion-mnist            (Debian/Ubuntu)"
echo "  export GIFKIT_FASHION_MNIST=/folder/with/the/4/official/idx/files"
echo "  .venv/bin/gifkit mini --quick --download                (torchvision download, needs internet)"
exit 0
