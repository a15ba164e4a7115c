#!/bin/sh
# Install what nbhub needs to build and test, and nothing that is already there.
#   - Debian packages (apt-get update runs once, only when something is missing)
#   - .venv from PyPI with the Python-side tools (ipykernel, papermill, pytest, jupyterhub ...)
#   - .venv-sparkmagic from PyPI: sparkmagic, the Livy client of the Livy tests (its Kerberos
#     dependencies build from source: libkrb5-dev)
#   - npm packages for the browser tests (tests/browser) and the benchmarks (bench: configurable-http-proxy)
#   - Keycloak (Maven Central) for the SSO tests, unpacked and built in ~/.cache/nbhub
# Idempotent: a second run with everything present takes well under a second.
set -eu
cd "$(dirname "$0")/.."

DEB_PKGS="build-essential pkg-config clang libclang-rt-14-dev libuv1-dev libzmq3-dev libjansson-dev libyaml-dev
libssl-dev openssl curl libsqlite3-dev libcurl4-openssl-dev libargon2-dev libcmocka-dev libhttp-parser-dev libcmark-gfm-dev libcmark-gfm-extensions-dev zlib1g-dev tzdata
python3 python3-venv python3-dev python3-ipykernel procps chromium firefox-esr fonts-dejavu-core openjdk-17-jre-headless
wrk unzip libkrb5-dev"

missing=""
for p in $DEB_PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
# Node for the browser tests (playwright-core, puppeteer-core): Debian's, unless a node is
# already on PATH (images that ship their own must not get a second one).
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
    echo "install-deps: installing Debian packages:$missing"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# Python environment: rebuilt when requirements change (stamp holds their hash).
REQ=requirements-dev.txt
want=$(sha256sum "$REQ" | cut -d' ' -f1)
have=$(cat .venv/.nbhub-stamp 2>/dev/null || true)
if [ "$want" != "$have" ]; then
    echo "install-deps: preparing .venv from $REQ"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -r "$REQ"
    echo "$want" > .venv/.nbhub-stamp
fi

# sparkmagic in its own venv (requirements-sparkmagic.txt says why), rebuilt the same way.
# A cold install builds gssapi and krb5 (~7 min here on a loaded machine); pip's wheel
# cache makes the next one quick.
REQ=requirements-sparkmagic.txt
want=$(sha256sum "$REQ" | cut -d' ' -f1)
have=$(cat .venv-sparkmagic/.nbhub-stamp 2>/dev/null || true)
if [ "$want" != "$have" ]; then
    echo "install-deps: preparing .venv-sparkmagic from $REQ"
    [ -x .venv-sparkmagic/bin/python ] || python3 -m venv .venv-sparkmagic
    .venv-sparkmagic/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
    .venv-sparkmagic/bin/python -m pip install -q --disable-pip-version-check -r "$REQ"
    echo "$want" > .venv-sparkmagic/.nbhub-stamp
fi

# Browser-test tools from npm, reinstalled when the lock file changes; neither
# downloads a browser of its own.  playwright-core drives Debian's chromium;
# puppeteer-core drives Debian's firefox-esr over WebDriver BiDi (playwright
# drives only its own patched Firefox build, which cannot be fetched here).
# bench/ holds configurable-http-proxy, JupyterHub's proxy, the anchor of bench/hub/.
for dir in tests/browser bench; do
    LOCK=$dir/package-lock.json
    want=$(sha256sum "$LOCK" | cut -d' ' -f1)
    have=$(cat $dir/node_modules/.nbhub-stamp 2>/dev/null || true)
    if [ "$want" != "$have" ]; then
        echo "install-deps: npm ci in $dir"
        (cd $dir && npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" > $dir/node_modules/.nbhub-stamp
    fi
done

# Keycloak, the OpenID provider of the SSO tests (tests/blackbox/keycloak.py): the
# zip from Maven Central, checked against Maven's .sha1, kept in ~/.cache/nbhub and
# unpacked beside it, outside any checkout, so worktrees and CI caches share one copy.
# `kc.sh build` runs once here with the options the fixture starts it with
# (tests/blackbox/keycloak.py KC_BUILD_OPTS, keep both equal): `start --optimized`
# then skips Quarkus' ~45 s augmentation at every start, and nothing is written
# into the install afterwards (each test session points its data elsewhere).
KC_VERSION=26.7.3
KC_BUILD_OPTS="--db=dev-mem --cache=local --health-enabled=false"
KC_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/nbhub
KC_HOME=${NBHUB_KEYCLOAK_HOME:-$KC_CACHE/keycloak-$KC_VERSION}
if [ "$(cat "$KC_HOME/.nbhub-built" 2>/dev/null || true)" != "$KC_BUILD_OPTS" ] && command -v java >/dev/null 2>&1; then
    KC_ZIP=$KC_CACHE/keycloak-$KC_VERSION.zip
    KC_URL=https://repo1.maven.org/maven2/org/keycloak/keycloak-quarkus-dist/$KC_VERSION/keycloak-quarkus-dist-$KC_VERSION.zip
    mkdir -p "$KC_CACHE"
    want=$(curl -fsSL "$KC_URL.sha1" | cut -c1-40)
    if [ "$(sha1sum "$KC_ZIP" 2>/dev/null | cut -d' ' -f1)" != "$want" ]; then
        echo "install-deps: downloading Keycloak $KC_VERSION"
        curl -fsSL -o "$KC_ZIP.$$" "$KC_URL"
        [ "$(sha1sum "$KC_ZIP.$$" | cut -d' ' -f1)" = "$want" ] || { rm -f "$KC_ZIP.$$"; echo "install-deps: Keycloak zip: bad sha1" >&2; exit 1; }
        mv "$KC_ZIP.$$" "$KC_ZIP"
    fi
    # Unpacked and built under a temporary name, renamed when complete: a second
    # install running at the same time (another checkout) never sees half a tree.
    echo "install-deps: unpacking and building Keycloak into $KC_HOME"
    tmp=$KC_HOME.tmp.$$
    rm -rf "$tmp" && mkdir -p "$tmp"
    (cd "$tmp" && unzip -q "$KC_ZIP" && mv keycloak-$KC_VERSION/* . && rmdir keycloak-$KC_VERSION)
    "$tmp/bin/kc.sh" build $KC_BUILD_OPTS >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; exit 1; }
    echo "$KC_BUILD_OPTS" > "$tmp/.nbhub-built"
    rm -rf "$KC_HOME.old" && { [ ! -e "$KC_HOME" ] || mv "$KC_HOME" "$KC_HOME.old"; } && mv "$tmp" "$KC_HOME" && rm -rf "$KC_HOME.old"
fi
