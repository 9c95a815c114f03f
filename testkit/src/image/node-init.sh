#!/bin/sh
# testkit node init: the only child of tini, which is PID 1 and reaps zombies. (Without a
# reaper a stopped dockerd stays a zombie, its pid file points at it, and start-stop-daemon
# then refuses to start a new one.)
#
# It starts what a real host starts at boot - sshd and the docker service, via sysvinit as
# there is no systemd in a node - then waits. On SIGTERM (docker stop) it stops dockerd
# cleanly so that the swarm state on the node's /var/lib/docker volume stays consistent.

log() { echo "testkit-init: $*"; }

# /run is a fresh tmpfs at every container start: no stale pid files survive a restart.
mkdir -p /run/sshd /run/lock

# Host keys are per node and made at first start (they persist in the container across
# restarts); baked into the image, every node would share one identity and host key
# checking would prove nothing.
ssh-keygen -A
/usr/sbin/sshd || log "sshd failed to start"
service docker start || log "the docker service failed to start (see /var/log/docker.log)"
touch /run/testkit-init.done
log "started sshd and docker"

shutdown() {
    log "stopping"
    service docker stop
    [ -f /run/sshd.pid ] && kill "$(cat /run/sshd.pid)" 2>/dev/null
    exit 0
}
trap shutdown TERM INT

while :; do
    sleep 3600 &
    wait $!
done
