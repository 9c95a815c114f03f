# shellcheck shell=bash
# Sourced by build-node.sh (part of the node image recipe, hashed into the cache key).
#
# A docker-ce-shaped apt repository, /srv/docker-ce-repo, built from REAL engine binaries
# (Debian's builds of the same upstream versions). These are LAB REBUILDS, NOT Docker's
# packages: no machine here reaches download.docker.com. What they copy from Docker's:
#   - the package names: docker-ce, docker-ce-cli, containerd.io, docker-buildx-plugin,
#     docker-compose-plugin, docker-ce-rootless-extras;
#   - both version schemes: 5:20.10.24~3-0~debian-bookworm (up to 20.10) and
#     5:26.1.5-1~debian.12~bookworm (since 23.0);
#   - the dependency structure: docker-ce Depends docker-ce-cli, containerd.io (>= minimum),
#     Recommends docker-ce-rootless-extras, docker-buildx-plugin (via the CLI);
#     Conflicts/Replaces docker.io; containerd.io ships runc and Provides/Conflicts/Replaces
#     containerd and runc;
#   - the files' places (/usr/bin/dockerd, /usr/libexec/docker/cli-plugins/) and the unit
#     files docker.service, docker.socket, containerd.service;
#   - maintainer scripts that enable and (re)start the units through deb-systemd-helper and
#     deb-systemd-invoke, which honour policy-rc.d, like debhelper's generated ones.
# Not copied: the sysvinit script (these packages are for systemd hosts), apparmor, docs.
#
# Needs from build-node.sh: WORK, deb_of, die, and the *_VERSION variables of versions.env.

CE_REPO=$ROOTFS/srv/docker-ce-repo
# The second hop (28.x, containerd.io 2.x), like /srv/lab-repo-hop, in a repository of its own.
CE_HOP_REPO=$ROOTFS/srv/docker-ce-repo-hop
OUT_REPO=$CE_REPO
CE_SUFFIX_OLD="~3-0~debian-bookworm"
CE_SUFFIX="-1~debian.12~bookworm"

# upstream DEBIAN_VERSION: "1.7.24~ds1-6+deb13u1" -> 1.7.24, "26.1.5+dfsg1-9" -> 26.1.5
upstream() { local v=${1#*:}; v=${v%%[~+]*}; echo "${v%%-*}"; }

# ce_version UPSTREAM: Docker's scheme for that engine version.
ce_version() {
    case "$1" in
        1[0-9].*|20.*) echo "5:$1$CE_SUFFIX_OLD" ;;
        *) echo "5:$1$CE_SUFFIX" ;;
    esac
}

# mkdeb NAME VERSION TREE [CONTROL-LINE...]: build TREE as a .deb into the docker-ce repo.
mkdeb() {
    local name=$1 version=$2 tree=$3 line
    shift 3
    mkdir -p "$tree/DEBIAN"
    {
        echo "Package: $name"
        echo "Version: $version"
        echo "Architecture: amd64"
        echo "Maintainer: swarm-upgrade testkit <testkit@localhost>"
        echo "Section: admin"
        echo "Priority: optional"
        for line in "$@"; do echo "$line"; done
        echo "Description: $name for the swarm-upgrade lab (testkit rebuild, NOT Docker's package)"
        echo " Built by testkit from Debian's binaries of the same upstream version."
    } > "$tree/DEBIAN/control"
    (cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' \
        | LC_ALL=C sort -z | xargs -0r md5sum > DEBIAN/md5sums)
    dpkg-deb --root-owner-group -Zgzip -z1 -b "$tree" "$OUT_REPO/" >/dev/null
}

# Maintainer scripts in the shape debhelper generates for units enabled and started by
# default, restarted after an upgrade (Docker's packages do the same).
unit_postinst() {
    local units=$* u
    cat <<EOF
#!/bin/sh
set -e
if [ "\$1" = configure ] && [ -z "\$2" ] && ! getent group docker >/dev/null; then
    groupadd --system docker
fi
if [ "\$1" = configure ] || [ "\$1" = abort-upgrade ] || [ "\$1" = abort-deconfigure ] || [ "\$1" = abort-remove ]; then
EOF
    for u in $units; do
        cat <<EOF
    deb-systemd-helper unmask '$u' >/dev/null || true
    # was-enabled defaults to true, so new installations run enable.
    if deb-systemd-helper --quiet was-enabled '$u'; then
        deb-systemd-helper enable '$u' >/dev/null || true
    else
        deb-systemd-helper update-state '$u' >/dev/null || true
    fi
EOF
    done
    cat <<EOF
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        if [ -n "\$2" ]; then _dh_action=restart; else _dh_action=start; fi
        deb-systemd-invoke \$_dh_action $units >/dev/null || true
    fi
fi
EOF
}
unit_prerm() {
    cat <<EOF
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "\$1" = remove ]; then
    deb-systemd-invoke stop $* >/dev/null || true
fi
EOF
}
unit_postrm() {
    cat <<EOF
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl --system daemon-reload >/dev/null || true; fi
if [ "\$1" = remove ] && [ -x /usr/bin/deb-systemd-helper ]; then deb-systemd-helper mask $* >/dev/null || true; fi
if [ "\$1" = purge ] && [ -x /usr/bin/deb-systemd-helper ]; then
    deb-systemd-helper purge $* >/dev/null || true
    deb-systemd-helper unmask $* >/dev/null || true
fi
EOF
}
scripts() { # TREE UNITS...
    local tree=$1
    shift
    mkdir -p "$tree/DEBIAN"
    unit_postinst "$@" > "$tree/DEBIAN/postinst"
    unit_prerm "$@" > "$tree/DEBIAN/prerm"
    unit_postrm "$@" > "$tree/DEBIAN/postrm"
    chmod 0755 "$tree/DEBIAN/postinst" "$tree/DEBIAN/prerm" "$tree/DEBIAN/postrm"
}

containerd_service() {
    cat <<'EOF'
# containerd.service as Docker's containerd.io ships it (testkit lab rebuild)
[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
EOF
}

docker_service() {
    cat <<'EOF'
# docker.service as Docker's docker-ce ships it (testkit lab rebuild)
[Unit]
Description=Docker Application Container Engine
Documentation=https://docs.docker.com
After=network-online.target docker.socket firewalld.service containerd.service time-set.target
Wants=network-online.target containerd.service
Requires=docker.socket

[Service]
Type=notify
ExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock
ExecReload=/bin/kill -s HUP $MAINPID
TimeoutStartSec=0
RestartSec=2
Restart=always
StartLimitBurst=3
StartLimitInterval=60s
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
Delegate=yes
KillMode=process
OOMScoreAdjust=-500

[Install]
WantedBy=multi-user.target
EOF
}

docker_socket() {
    cat <<'EOF'
# docker.socket as Docker's docker-ce ships it (testkit lab rebuild)
[Unit]
Description=Docker Socket for the API

[Socket]
ListenStream=/run/docker.sock
SocketMode=0660
SocketUser=root
SocketGroup=docker

[Install]
WantedBy=sockets.target
EOF
}

# ce_engine UPSTREAM DIR MIN_CONTAINERD: docker-ce, docker-ce-cli and
# docker-ce-rootless-extras for the engine whose binaries are unpacked in DIR
# (Debian's layout: usr/sbin/dockerd, usr/sbin/docker-proxy, usr/bin/docker,
# usr/bin/tini-static, usr/share/docker.io/contrib/).
ce_engine() {
    local up=$1 x=$2 min=$3 v t
    v=$(ce_version "$up")
    t=$WORK/ce/docker-ce-$up
    mkdir -p "$t/usr/bin" "$t/lib/systemd/system" "$t/etc/docker"
    cp "$x/usr/sbin/dockerd" "$x/usr/sbin/docker-proxy" "$t/usr/bin/"
    cp "$x/usr/bin/tini-static" "$t/usr/bin/docker-init"
    docker_service > "$t/lib/systemd/system/docker.service"
    docker_socket > "$t/lib/systemd/system/docker.socket"
    scripts "$t" docker.socket docker.service
    mkdeb docker-ce "$v" "$t" \
        "Depends: docker-ce-cli, containerd.io (>= $min), iptables, init-system-helpers (>= 1.18~), libc6 (>= 2.34)" \
        "Recommends: apparmor, ca-certificates, docker-ce-rootless-extras, git, pigz, procps, xz-utils" \
        "Conflicts: docker (<< 1.5~), docker-engine, docker.io" \
        "Replaces: docker-engine"

    t=$WORK/ce/docker-ce-cli-$up
    mkdir -p "$t/usr/bin"
    cp "$x/usr/bin/docker" "$t/usr/bin/"
    mkdeb docker-ce-cli "$v" "$t" \
        "Depends: libc6 (>= 2.34)" \
        "Recommends: docker-buildx-plugin, docker-compose-plugin" \
        "Conflicts: docker (<< 1.5~), docker-engine, docker.io, docker-cli" \
        "Breaks: docker-ce (<< 5:0)" \
        "Replaces: docker-ce (<< 5:0), docker-engine"

    t=$WORK/ce/docker-ce-rootless-extras-$up
    mkdir -p "$t/usr/bin"
    cp "$x"/usr/share/docker.io/contrib/dockerd-rootless*.sh "$t/usr/bin/"
    mkdeb docker-ce-rootless-extras "$v" "$t" \
        "Depends: docker-ce" \
        "Recommends: slirp4netns, dbus-user-session"
}

# containerd_io VERSION DIR: containerd.io with containerd from DIR and runc from RUNC_DIR.
containerd_io() {
    local v=$1 x=$2 t
    t=$WORK/ce/containerd.io-$v
    mkdir -p "$t/usr/bin" "$t/lib/systemd/system" "$t/etc/containerd"
    cp "$x/usr/bin/containerd" "$x/usr/bin/containerd-shim-runc-v2" "$x/usr/bin/ctr" "$t/usr/bin/"
    cp "$RUNC_DIR/usr/sbin/runc" "$t/usr/bin/runc"
    containerd_service > "$t/lib/systemd/system/containerd.service"
    printf '#   Copyright 2018-2022 Docker Inc.\n\ndisabled_plugins = ["cri"]\n' > "$t/etc/containerd/config.toml"
    echo /etc/containerd/config.toml > "$t/DEBIAN.conffiles"
    scripts "$t" containerd.service
    mv "$t/DEBIAN.conffiles" "$t/DEBIAN/conffiles"
    mkdeb containerd.io "$v" "$t" \
        "Depends: libc6 (>= 2.34), libseccomp2 (>= 2.5.0)" \
        "Provides: containerd, runc" \
        "Conflicts: containerd, runc" \
        "Replaces: containerd, runc"
}

# plugin NAME VERSION DEB: a CLI plugin package from a Debian package's plugin binary.
plugin() {
    local name=$1 v=$2 deb=$3 t bin
    bin=${name%-plugin}
    t=$WORK/ce/$name-$v
    mkdir -p "$t/usr/libexec/docker/cli-plugins" "$WORK/ce/x-$name-$v"
    dpkg-deb -x "$deb" "$WORK/ce/x-$name-$v"
    cp "$WORK/ce/x-$name-$v/usr/libexec/docker/cli-plugins/$bin" "$t/usr/libexec/docker/cli-plugins/"
    mkdeb "$name" "$v" "$t" "Depends: libc6 (>= 2.34)"
}

# unpack DIR PACKAGE=VERSION...: Debian packages' files into DIR.
unpack() {
    local dir=$1 pv
    shift
    mkdir -p "$dir"
    for pv in "$@"; do dpkg-deb -x "$(deb_of "${pv%%=*}" "${pv#*=}")" "$dir"; done
}

build_docker_ce_repo() {
    mkdir -p "$CE_REPO" "$CE_HOP_REPO" "$WORK/ce"
    RUNC_DIR=$WORK/ce/x-runc
    unpack "$RUNC_DIR" "runc=$CURRENT_RUNC"

    local x20=$WORK/ce/x-20 x26=$WORK/ce/x-26 x28=$WORK/ce/x-28
    unpack "$x20" "docker.io=$CURRENT_DOCKER_IO" "containerd=$CURRENT_CONTAINERD" "tini=$CURRENT_TINI"
    unpack "$x26" "docker.io=$TARGET_DOCKER_IO" "docker-cli=$TARGET_DOCKER_CLI" \
        "containerd=$TARGET_CONTAINERD" "tini=$CURRENT_TINI"
    unpack "$x28" "docker.io=$HOP_DOCKER_IO" "docker-cli=$HOP_DOCKER_CLI" \
        "containerd=$HOP_CONTAINERD" "tini-static=$HOP_TINI_STATIC"

    ce_engine "$(upstream "$CURRENT_DOCKER_IO")" "$x20" 1.4.1
    ce_engine "$(upstream "$TARGET_DOCKER_IO")" "$x26" 1.6.4
    containerd_io "$(upstream "$CURRENT_CONTAINERD")-1" "$x20"
    containerd_io "$(upstream "$TARGET_CONTAINERD")-1" "$x26"
    OUT_REPO=$CE_HOP_REPO
    ce_engine "$(upstream "$HOP_DOCKER_IO")" "$x28" 1.7.27
    containerd_io "$(upstream "$HOP_CONTAINERD")-1" "$x28"
    OUT_REPO=$CE_REPO

    # The broken engine of this family: 26.1.5's packages as 26.1.99, whose dockerd exits 1.
    local xb=$WORK/ce/x-broken
    cp -a "$x26" "$xb"
    break_dockerd "$xb"
    ce_engine 26.1.99 "$xb" 1.6.4

    plugin docker-buildx-plugin "$(upstream "$BUILDX_OLD")$CE_SUFFIX" "$(deb_of docker-buildx "$BUILDX_OLD")"
    plugin docker-buildx-plugin "$(upstream "$BUILDX_NEW")$CE_SUFFIX" "$(deb_of docker-buildx "$BUILDX_NEW")"
    plugin docker-compose-plugin "$(upstream "$COMPOSE_OLD")$CE_SUFFIX" "$(deb_of docker-compose "$COMPOSE_OLD")"
    plugin docker-compose-plugin "$(upstream "$COMPOSE_NEW")$CE_SUFFIX" "$(deb_of docker-compose "$COMPOSE_NEW")"

    (cd "$CE_REPO" && dpkg-scanpackages --multiversion . /dev/null > Packages)
    (cd "$CE_HOP_REPO" && dpkg-scanpackages --multiversion . /dev/null > Packages)
    # The versions a docker-ce node starts with, and the targets, for testkit and the tests.
    {
        echo "CE_START=$(ce_version "$(upstream "$CURRENT_DOCKER_IO")")"
        echo "CE_TARGET=$(ce_version "$(upstream "$TARGET_DOCKER_IO")")"
        echo "CE_HOP=$(ce_version "$(upstream "$HOP_DOCKER_IO")")"
        echo "CE_BROKEN=$(ce_version 26.1.99)"
        echo "CONTAINERD_IO_START=$(upstream "$CURRENT_CONTAINERD")-1"
        echo "CONTAINERD_IO_TARGET=$(upstream "$TARGET_CONTAINERD")-1"
        echo "CONTAINERD_IO_HOP=$(upstream "$HOP_CONTAINERD")-1"
        echo "BUILDX_PLUGIN_START=$(upstream "$BUILDX_OLD")$CE_SUFFIX"
        echo "BUILDX_PLUGIN_NEW=$(upstream "$BUILDX_NEW")$CE_SUFFIX"
        echo "COMPOSE_PLUGIN_START=$(upstream "$COMPOSE_OLD")$CE_SUFFIX"
        echo "COMPOSE_PLUGIN_NEW=$(upstream "$COMPOSE_NEW")$CE_SUFFIX"
    } > "$CE_REPO/versions.env"
    cat "$CE_REPO/versions.env"
    ls -l "$CE_REPO" "$CE_HOP_REPO"
}
