# Shared by scripts/app and scripts/test-app (sourced, not run): installs what building and
# testing the desktop app needs. Functions only; each is quick when everything is in place.

export CARGO_TARGET_DIR="${HEARTH_APP_TARGET:-$PWD/target-app}"

# What a Tauri 2 build needs on Debian 12 / Ubuntu 22.04+.
APP_BUILD_PACKAGES=(libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev
  libssl-dev libxdo-dev build-essential pkg-config file)
# What the end-to-end tests add: a virtual display, WebKit's WebDriver and a D-Bus session.
APP_TEST_PACKAGES=(xvfb xauth webkit2gtk-driver dbus-daemon)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "Installing system packages needs root: run this as root or install sudo." >&2
    return 1
  fi
}

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "Install these system packages (or your system's equivalents): ${missing[*]}" >&2
    return 1
  fi
  echo "Installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

app_setup_system() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "Rust is not installed: install it with rustup (https://rustup.rs), then run this again." >&2
    return 1
  fi
  apt_install "${APP_BUILD_PACKAGES[@]}" "$@"
}

app_setup_node() {
  if ! command -v node >/dev/null 2>&1 || ! node -e '
    const [a, b] = process.versions.node.split(".").map(Number);
    process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
    echo "Node.js 20.19 or newer is needed (https://nodejs.org, or your package manager)." >&2
    return 1
  fi
  # Install only when package-lock.json changed since the last install.
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

app_build_release() {
  # The release binary and no bundles; the UI is built first (beforeBuildCommand).
  npx tauri build --no-bundle --ci
}
