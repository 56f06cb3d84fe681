#!/usr/bin/env bash
# Proves yocto/check-layer.sh catches what it claims to: on a scratch copy of the repository,
# each case plants one mistake and expects check-layer.sh to exit 1 naming it; the untouched copy
# must pass. Prints one line per case and `N passed, N failed` last; exits 1 on any failure.
# Needs git, python3 >= 3.11; takes about a minute on a busy machine; builds nothing.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

passed=0
failed=0

# fresh: a copy of the tracked and untracked (not ignored) files, as its own git repository.
fresh() {
    rm -rf "$scratch/r"
    mkdir -p "$scratch/r"
    (cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf -) | tar -xf - -C "$scratch/r"
    (cd "$scratch/r" && git init -q && git add -A)
}

# expect NAME EXPECTED-TEXT MUTATION...: plant the mutation (a shell command run in the copy),
# run the checker, want exit 1 and EXPECTED-TEXT in a FAIL report.
expect() {
    local name="$1" want="$2"
    shift 2
    fresh
    if ! (cd "$scratch/r" && eval "$*"); then
        echo "FAIL $name: the mutation itself failed: $*"
        failed=$((failed + 1))
        return
    fi
    local out rc=0
    out="$("$scratch/r/yocto/check-layer.sh" 2>&1)" || rc=$?
    if [ "$rc" -eq 1 ] && grep -qF -- "$want" <<<"$out" && tail -n 1 <<<"$out" | grep -q ' [1-9][0-9]* failed$'; then
        echo "ok   $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name: wanted exit 1 and '$want'; got exit $rc:"
        sed 's/^/     | /' <<<"$out" | grep -v '^     | ok ' || true
        failed=$((failed + 1))
    fi
}

recipe=yocto/meta-roombox/recipes-multimedia/roombox/roombox_git.bb
files=yocto/meta-roombox/recipes-multimedia/roombox/files
pg=yocto/meta-roombox/recipes-multimedia/packagegroups/packagegroup-roombox.bb
image=yocto/meta-roombox/recipes-core/images/roombox-image.bb
inc=yocto/meta-roombox/conf/include/roombox.inc

fresh
if out="$("$scratch/r/yocto/check-layer.sh" 2>&1)" && tail -n 1 <<<"$out" | grep -q ' 0 failed$'; then
    echo "ok   the layer as committed passes"
    passed=$((passed + 1))
else
    echo "FAIL the layer as committed does not pass:"
    sed 's/^/     | /' <<<"$out"
    failed=$((failed + 1))
fi

expect "old override syntax" "old override syntax" \
    "echo 'RDEPENDS_\${PN} += \"bash\"' >> $recipe"
expect "old _append on a function" "old override syntax" \
    "printf 'do_install_append() {\n    true\n}\n' >> $recipe"
expect "unquoted value" "value is not one quoted string" \
    "echo 'FOO = bar' >> $recipe"
expect "broken inline Python" "does not compile" \
    "printf '%s\\n' 'FOO = \"\${@d.getVar(1}\"' >> $recipe"
expect "shell syntax error in do_install" "bash -n" \
    "sed -i 's/^    install -d -m 0755 \${D}\${sysconfdir}\/roombox$/    if [ ; then/' $recipe"
expect "SRC_URI names a missing file" "file://nope.conf is in none of" \
    "sed -i 's|file://roombox-tegra.conf|file://roombox-tegra.conf file://nope.conf|' $recipe"
expect "a file under files/ nobody uses" "is not in SRC_URI (dead file)" \
    "echo x > $files/stray.conf"
expect "installed path outside FILES" "/opt/roombox/x.conf" \
    "sed -i 's|^do_install:append:tegra() {|&\n    install -D -m 0644 \${UNPACKDIR}/roombox-tegra.conf \${D}/opt/roombox/x.conf|' $recipe"
expect "do_install copies a file the repository lacks" "not in the repository" \
    "rm config/jetson.toml; sed -i 's|\${S}/config/roombox.toml \${D}|\${S}/config/gone.toml \${D}|' $recipe"
expect "unit gains a group the recipe does not make" "SupplementaryGroups=dialout2" \
    "sed -i 's/^SupplementaryGroups=.*/& dialout2/' systemd/roombox.service"
expect "SYSTEMD_SERVICE names a unit the repository lacks" "SYSTEMD_SERVICE names roomboxd.service, which is not in systemd/" \
    "sed -i 's/^SYSTEMD_SERVICE:\${PN} = .*/SYSTEMD_SERVICE:\${PN} = \"roomboxd.service\"/' $recipe"
expect "Cargo.lock changed, crates.inc not regenerated" "roombox-crates.inc does not match Cargo.lock" \
    "sed -i '0,/^version = \"1\\./s//version = \"9./' Cargo.lock"
expect "license line moved" "md5 of Cargo.toml lines 7-7" \
    "sed -i '7i # moved' Cargo.toml"
# Planted where no unit tests follow (the checker reads a file up to its #[cfg(test)]), and an
# element the layer has never shipped (flvmux, the first choice here, ships now for RTMP).
expect "agent uses an element the layer does not ship" "uses element avimux" \
    "printf 'fn x() { let _ = make(\"avimux\"); }\n' >> src/media/pip.rs"
expect "agent names an element in a list, not in make()" "uses element rtph265depay" \
    "printf 'const NAMES: &[&str] = &[\"rtph265depay\"];\\n' >> src/media/pip.rs"
expect "element's package dropped from RDEPENDS" "h264parse" \
    "sed -i '/gstreamer1.0-plugins-bad-videoparsersbad/d' $recipe"
expect "stale minimum Rust" "ROOMBOX_MIN_RUST is 1.75" \
    "sed -i 's/^ROOMBOX_MIN_RUST ?= .*/ROOMBOX_MIN_RUST ?= \"1.75\"/' $recipe"
expect "unknown cargo feature" "--features jetson" \
    "sed -i \"s/' --features rpi'/' --features jetson'/\" $recipe"
expect "PACKAGECONFIG for a plugin dropped from the include" "'opus' to PACKAGECONFIG:pn-gstreamer1.0-plugins-base" \
    "sed -i 's/plugins-base = \" opus pango\"/plugins-base = \" pango\"/' $inc"
expect "machine packagegroup made allarch" "PACKAGE_ARCH" \
    "sed -i '/^PACKAGE_ARCH/d' $pg"
expect "image forces the init system" "DISTRO_FEATURES is a distro setting" \
    "echo 'DISTRO_FEATURES:append = \" systemd\"' >> $image"
expect "site drop-in with an unknown key" "has no key bitrate" \
    "printf '[fleet]\nbitrate = 1\n' > yocto/examples/meta-roombox-site/recipes-multimedia/roombox/files/10-site.toml"
expect "recipe outside BBFILES" "is not matched by BBFILES" \
    "mkdir -p yocto/meta-roombox/recipes-x && printf 'SUMMARY = \"x\"\\n' > yocto/meta-roombox/recipes-x/x.bb"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
