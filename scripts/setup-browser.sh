#!/usr/bin/env bash
# Installs what the browser tests (tests/browser.rs) drive: Debian's headless Chromium and
# its WebDriver (chromium, chromium-driver), with a font for legible screenshots. Quick when
# already installed. axe-core, the accessibility checker they inject, comes from npm with the
# other test clients (scripts/setup-clients.sh).
set -euo pipefail
if command -v chromium > /dev/null && command -v chromedriver > /dev/null; then
    exit 0
fi
packages=(chromium chromium-driver fonts-dejavu-core)
if [ "$(id -u)" -eq 0 ]; then
    apt=(apt-get)
elif command -v sudo > /dev/null; then
    apt=(sudo apt-get)
else
    echo "error: chromium and chromedriver are missing; install the Debian packages ${packages[*]} (as root)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! "${apt[@]}" install -y --no-install-recommends "${packages[@]}" > /dev/null; then
    # A fresh machine may not have the package lists yet.
    "${apt[@]}" update -qq
    "${apt[@]}" install -y --no-install-recommends "${packages[@]}" > /dev/null
fi
command -v chromium > /dev/null && command -v chromedriver > /dev/null
