#!/usr/bin/env bash
# Check config/sigbridge.service under a real systemd, end to end. Optional and manual: it is not
# part of the test suite.
#
# The script boots a throw-away systemd as PID 1 in new mount, PID, cgroup, UTS, IPC and network
# namespaces. Its root file system is an overlay of the host's / with a tmpfs upper layer, so the
# README install steps write /opt, /etc and /var only in memory. It then runs the first bash block
# of README.md, section "Running under systemd", verbatim inside it and checks start-up (READY),
# STATUS=, signals over loopback, the watchdog, reload, CURVE with LoadCredential=, stop and the
# journal. It prints PASS or FAIL per check and removes the namespaces, the mounts and its cgroup
# at exit.
#
# Needs: root with CAP_SYS_ADMIN, systemd (tested with 252 on Debian 12), a Python 3.11 or newer
# with venv as /usr/bin/python3 or on the usual PATH, and a PID 1 that is not systemd (a
# container or VM). The namespace has no network except loopback, so `pip install` needs a local
# package source (pip.conf find-links or index-url), or SIGBRIDGE_CHECK_HOST_NET=1 to share the
# host's network namespace (the daemon then binds the host's 127.0.0.1:5555).
#
# Exit status: 0 all checks passed, 1 a check failed, 77 this machine cannot boot systemd here.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SYSTEMD=/lib/systemd/systemd
SYSTEM_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
FAILED=0
NS_PID=""
UNSHARE_PID=""
CGROUP_DIR=""
SCRATCH=""

skip() {
    echo "SKIP: $*; cannot boot a throw-away systemd on this machine" >&2
    exit 77
}

pass() { echo "PASS  $1"; }

fail() {
    echo "FAIL  $1${2:+: $2}"
    FAILED=$((FAILED + 1))
}

# Run a command inside the namespaces, as root, with a clean environment.
in_ns() {
    nsenter -t "$NS_PID" -a env -i PATH="$SYSTEM_PATH" HOME=/root LANG=C.UTF-8 \
        SYSTEMD_COLORS=0 SYSTEMD_PAGER=cat "$@"
}

unit_property() {
    in_ns systemctl show sigbridge -p "$1" --value
}

# Wait up to $1 seconds for the sigbridge journal to contain the fixed string $2.
wait_for_log() {
    local deadline=$((SECONDS + $1))
    while ((SECONDS < deadline)); do
        in_ns journalctl -u sigbridge -o cat --no-pager | grep -qF -- "$2" && return 0
        sleep 1
    done
    return 1
}

teardown() {
    if [[ -n "$NS_PID" ]] && kill -0 "$NS_PID" 2>/dev/null; then
        in_ns systemctl poweroff --no-block >/dev/null 2>&1
        for _ in $(seq 30); do
            kill -0 "$NS_PID" 2>/dev/null || break
            sleep 1
        done
        # Killing PID 1 of the namespace kills every process left in it.
        kill -0 "$NS_PID" 2>/dev/null && kill -KILL "$NS_PID"
    fi
    [[ -n "$UNSHARE_PID" ]] && wait "$UNSHARE_PID" 2>/dev/null
    if [[ -n "$CGROUP_DIR" && -d "$CGROUP_DIR" ]]; then
        for _ in $(seq 10); do
            find "$CGROUP_DIR" -depth -type d -exec rmdir {} \; 2>/dev/null
            [[ -d "$CGROUP_DIR" ]] || break
            sleep 1
        done
        [[ -d "$CGROUP_DIR" ]] && echo "WARNING: cgroup $CGROUP_DIR was not removed; remove it with rmdir" >&2
    fi
    [[ -n "$SCRATCH" ]] && rm -rf "$SCRATCH"
}

# --- Preconditions --------------------------------------------------------------------------------

[[ $(id -u) == 0 ]] || skip "needs root"
for tool in unshare nsenter ip findmnt; do
    command -v "$tool" >/dev/null || skip "$tool not found"
done
[[ -x $SYSTEMD ]] || skip "$SYSTEMD not found; install systemd"
[[ $(cat /proc/1/comm) != systemd ]] ||
    skip "PID 1 is systemd already; install the unit directly as README.md says"
unshare --mount --pid --cgroup --net --fork true 2>/dev/null ||
    skip "unshare --mount --pid --cgroup --net failed (CAP_SYS_ADMIN missing?)"

# A cgroup of its own keeps the nested systemd out of the rest of the host's cgroup tree.
if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
    CGROUP_ROOT=/sys/fs/cgroup
elif [[ $(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null) == cgroup2fs ]]; then
    CGROUP_ROOT=/sys/fs/cgroup/unified
else
    skip "no cgroup2 hierarchy under /sys/fs/cgroup"
fi
current_cgroup=$(sed -n 's/^0:://p' /proc/self/cgroup)
CGROUP_DIR="$CGROUP_ROOT${current_cgroup%/}/sigbridge-check-$$"
mkdir "$CGROUP_DIR" 2>/dev/null || { CGROUP_DIR=""; skip "cannot create a cgroup under $CGROUP_ROOT"; }

SCRATCH=$(mktemp -d /tmp/sigbridge-systemd-check.XXXXXX)
trap teardown EXIT
trap 'exit 1' INT TERM

# The install commands are the README's own, so the check fails when the README goes wrong.
awk '/^## Running under systemd/ {section = 1; next}
     section && /^## / {exit}
     section && /^```bash/ && !done {block = 1; next}
     block && /^```/ {block = 0; done = 1; next}
     block {print}' "$REPO/README.md" >"$SCRATCH/readme-install.sh"
[[ -s $SCRATCH/readme-install.sh ]] || {
    fail "README install block" "no bash block in README.md section \"Running under systemd\""
    exit 1
}

# --- Boot -----------------------------------------------------------------------------------------

# PID 1 of the new namespaces: build the overlay root, switch to it, and exec systemd.
cat >"$SCRATCH/stage.sh" <<'EOF'
#!/usr/bin/env bash
set -eu
mount --make-rprivate /
mount -t tmpfs -o size=8g,mode=0755 sigbridge-check "$SCRATCH/root"
mkdir "$SCRATCH/root/upper" "$SCRATCH/root/work" "$SCRATCH/root/merged"
new=$SCRATCH/root/merged
mount -t overlay overlay -o "lowerdir=/,upperdir=$SCRATCH/root/upper,workdir=$SCRATCH/root/work" "$new"
mount -t proc proc "$new/proc"
mount --rbind /sys "$new/sys"
mount --make-rprivate "$new/sys"
umount -R "$new/sys/fs/cgroup" 2>/dev/null || umount -l "$new/sys/fs/cgroup"
mount -t cgroup2 cgroup2 "$new/sys/fs/cgroup"
mount --rbind /dev "$new/dev"
mount -t tmpfs -o mode=0755 tmpfs "$new/run"
mount -t tmpfs -o mode=1777 tmpfs "$new/tmp"
# The repository (read-only, in case it lives on another mount) and the scratch folder.
mkdir -p "$new$REPO" "$new$SCRATCH"
mount --bind "$REPO" "$new$REPO"
mount -o remount,bind,ro "$new$REPO"
mount --bind "$SCRATCH" "$new$SCRATCH"
cd "$new"
mkdir -p oldroot
pivot_root . oldroot
umount -l /oldroot
rmdir /oldroot
# With a private /, systemd 252 left /run/credentials/sigbridge.service empty, so
# LoadCredential= failed. A host's systemd boot leaves / shared. These peer groups are new and
# local to the namespace.
mount --make-rshared /
ip link set lo up
exec env -i container=sigbridge-check PATH="$SYSTEM_PATH" "$SYSTEMD" --system --show-status=no
EOF
chmod +x "$SCRATCH/stage.sh"
mkdir "$SCRATCH/root"

net_flag=--net
# Without a network, each package lookup on an unreachable index would otherwise cost pip five
# retries with back-off, minutes in all. PIP_RETRIES=0 skips such an index at the first error.
pip_retries=PIP_RETRIES=0
if [[ ${SIGBRIDGE_CHECK_HOST_NET:-0} == 1 ]]; then
    net_flag=""
    pip_retries=PIP_RETRIES=5
fi
SCRATCH=$SCRATCH REPO=$REPO SYSTEMD=$SYSTEMD SYSTEM_PATH=$SYSTEM_PATH \
    sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CGROUP_DIR" \
    unshare --mount --pid --cgroup --uts --ipc $net_flag --fork --kill-child \
    "$SCRATCH/stage.sh" >"$SCRATCH/boot.log" 2>&1 &
UNSHARE_PID=$!

for _ in $(seq 30); do
    NS_PID=$(pgrep -P "$UNSHARE_PID" | head -1)
    [[ -n $NS_PID && $(cat "/proc/$NS_PID/comm" 2>/dev/null) == systemd ]] && break
    NS_PID=""
    sleep 1
done
if [[ -z $NS_PID ]]; then
    echo "systemd did not start; output of the namespace set-up:" >&2
    cat "$SCRATCH/boot.log" >&2
    skip "the namespace set-up failed"
fi
state=$(timeout 120 nsenter -t "$NS_PID" -a systemctl is-system-running --wait 2>&1)
if [[ $state != running && $state != degraded ]]; then
    cat "$SCRATCH/boot.log" >&2
    skip "systemd in the namespace reports '$state' after boot"
fi
pass "systemd $(in_ns systemctl --version | head -1 | cut -d' ' -f2) booted as PID 1 ($state)"

# --- Install and start, as in README.md -----------------------------------------------------------

echo "running the README install steps (pip install takes a while)..."
if in_ns env "$pip_retries" bash -c "cd '$REPO' && bash -ex '$SCRATCH/readme-install.sh'" \
    >"$SCRATCH/install.log" 2>&1; then
    pass "README install steps, systemctl enable --now returned"
else
    fail "README install steps" "see the output below"
    grep -v "^WARNING: Retrying" "$SCRATCH/install.log" | tail -30
    in_ns journalctl -u sigbridge --no-pager | tail -30
    exit 1
fi
started_at=$SECONDS
main_pid=$(unit_property MainPID)
[[ $(unit_property ActiveState)/$(unit_property SubState) == active/running ]] &&
    pass "active (running) after READY=1, MainPID=$main_pid" ||
    fail "start" "state $(unit_property ActiveState)/$(unit_property SubState)"

status_text=$(in_ns systemctl status sigbridge --no-pager | sed -n 's/^ *Status: //p')
[[ $status_text == *serving* ]] && pass "systemctl status shows STATUS= $status_text" ||
    fail "STATUS= line" "systemctl status shows '$status_text'"

# --- Traffic over loopback ------------------------------------------------------------------------

# The full EURUSD export trains the initial model in the daemon's worker process, then streams
# the bars after the backfill and gets one signal each.
sigbridge=/opt/sigbridge/.venv/bin/sigbridge
if in_ns timeout 900 "$sigbridge" feed --bars "$REPO/examples/data/EURUSD_H1.csv" \
    --backfill 3000 --wait-model 600 --out "$SCRATCH/signals.csv" >"$SCRATCH/feed.log" 2>&1; then
    signals=$(grep -c ',signal,' "$SCRATCH/signals.csv")
    ((signals > 0)) && pass "feed over loopback: $(tail -1 "$SCRATCH/feed.log")" ||
        fail "feed over loopback" "no signal rows in the output"
else
    fail "feed over loopback" "$(tail -3 "$SCRATCH/feed.log")"
fi

# --- Reload ---------------------------------------------------------------------------------------

in_ns systemctl reload sigbridge
if wait_for_log 20 "reloaded configuration" && [[ $(unit_property MainPID) == "$main_pid" ]]; then
    pass "systemctl reload (SIGHUP) logged a reload, same MainPID"
else
    fail "systemctl reload" "no reload log, or MainPID changed to $(unit_property MainPID)"
fi

in_ns cp /etc/sigbridge/sigbridge.toml "$SCRATCH/sigbridge.toml.good"
in_ns sh -c 'echo "[server" >>/etc/sigbridge/sigbridge.toml'
in_ns systemctl reload sigbridge
if wait_for_log 20 "rejected the reloaded configuration" &&
    [[ $(unit_property ActiveState) == active && $(unit_property MainPID) == "$main_pid" ]]; then
    pass "reload of an invalid config is rejected, service keeps running"
else
    fail "reload of an invalid config" "state $(unit_property ActiveState), MainPID $(unit_property MainPID)"
fi
in_ns cp "$SCRATCH/sigbridge.toml.good" /etc/sigbridge/sigbridge.toml

# --- Watchdog -------------------------------------------------------------------------------------

remaining=$((started_at + 95 - SECONDS))
((remaining > 0)) && sleep "$remaining"
restarts=$(unit_property NRestarts)
if [[ $restarts == 0 && $(unit_property MainPID) == "$main_pid" ]] &&
    ! in_ns journalctl -u sigbridge --no-pager | grep -q "Watchdog timeout"; then
    pass "watchdog (WatchdogSec=$(unit_property WatchdogUSec)): no timeout in $((SECONDS - started_at)) s"
else
    fail "watchdog" "NRestarts=$restarts, MainPID $(unit_property MainPID), or a watchdog timeout in the journal"
fi

# --- CURVE with LoadCredential=, as in README.md --------------------------------------------------

curve_secret=/run/credentials/sigbridge.service/server.key_secret
in_ns bash -ec "
    $sigbridge keygen --out /etc/sigbridge/keys --name server
    $sigbridge keygen --out /tmp/check-client --name check-client
    install -d /etc/sigbridge/clients
    install -m 0644 /tmp/check-client/check-client.key /etc/sigbridge/clients/
    sed -i -e 's|^curve_secret_key = .*|curve_secret_key = \"$curve_secret\"|' \
        -e 's|^curve_client_keys = .*|curve_client_keys = \"/etc/sigbridge/clients\"|' \
        /etc/sigbridge/sigbridge.toml
    grep -q '^curve_secret_key = \"$curve_secret\"' /etc/sigbridge/sigbridge.toml
    sed -i 's|^#LoadCredential=|LoadCredential=|' /etc/systemd/system/sigbridge.service
    grep -q '^LoadCredential=' /etc/systemd/system/sigbridge.service
    systemctl daemon-reload
    systemctl restart sigbridge
    head -701 $REPO/examples/data/USDCHF_H1.csv >/tmp/USDCHF_H1.csv
" >"$SCRATCH/curve.log" 2>&1
curve_setup=$?
if ((curve_setup == 0)) && in_ns timeout 120 "$sigbridge" feed --bars /tmp/USDCHF_H1.csv --backfill 600 \
    --wait-model 0 --server-key /etc/sigbridge/keys/server.key \
    --client-key /tmp/check-client/check-client.key_secret --out /tmp/curve.csv >>"$SCRATCH/curve.log" 2>&1; then
    pass "CURVE with LoadCredential=: an allowed client gets replies"
else
    fail "CURVE with LoadCredential=" "$(tail -3 "$SCRATCH/curve.log")"
    in_ns journalctl -u sigbridge --no-pager | tail -5
fi
if ((curve_setup == 0)) && ! in_ns timeout 60 "$sigbridge" feed --bars /tmp/USDCHF_H1.csv --backfill 600 \
    --wait-model 0 --timeout 3 --out /tmp/plain.csv >/dev/null 2>&1; then
    pass "CURVE: a client without keys gets no reply"
else
    fail "CURVE: a client without keys" "it got replies, or the CURVE set-up failed"
fi

# --- Stop and journal -----------------------------------------------------------------------------

in_ns systemctl stop sigbridge
result="$(unit_property Result) code=$(unit_property ExecMainCode) status=$(unit_property ExecMainStatus)"
# ExecMainCode 1 is CLD_EXITED: the process exited by itself instead of dying from a signal.
[[ $result == "success code=1 status=0" && $(unit_property ActiveState) == inactive ]] &&
    pass "systemctl stop: exited with status 0" || fail "systemctl stop" "$result"

journal=$(in_ns journalctl -u sigbridge -o cat --no-pager)
if grep -q "ready endpoint=" <<<"$journal" && grep -q "sigbridge daemon stopped" <<<"$journal"; then
    pass "journalctl -u sigbridge shows the daemon's log ($(wc -l <<<"$journal") lines)"
else
    fail "journalctl -u sigbridge" "no 'ready' or 'stopped' line"
fi

echo "info  $(in_ns systemd-analyze security sigbridge --no-pager 2>&1 | tail -1)"

if ((FAILED > 0)); then
    echo "$FAILED check(s) failed"
    exit 1
fi
echo "all checks passed"
