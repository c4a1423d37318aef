#!/usr/bin/env bash
# A real single-node SLURM cluster for the tests (tests/test_slurm.py): munge, MariaDB, slurmdbd,
# slurmctld and slurmd from Debian's packages, on a Debian machine (12 tested) without systemd
# (containers, CI runners), as root. Idempotent: it installs what is missing, writes the configs
# from the templates beside it and starts only the daemons that are not running; a cluster that is
# already up is reused as it is.
#
#   bash .ci/slurm/start_cluster.sh          # start, or reuse (default)
#   bash .ci/slurm/start_cluster.sh stop     # stop the daemons this script started
#
# Result: cluster "cytotrial", partition "debug" (default), one node = this host with its CPUs and
# memory, accounting through slurmdbd (sacct answers: the Snakemake executor polls with it),
# account "cytotrial" with root in it.
# Exit status: 0 cluster up; 2 it cannot be started here, with one line saying why (not root, no
# apt-get); anything else is a failure.
set -euo pipefail

CLUSTER=${CLUSTER:-cytotrial}
PARTITION=${PARTITION:-debug}
ACCOUNT=${ACCOUNT:-cytotrial}
DBPASS=${DBPASS:-slurmdbpass}
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=/run/slurm-local # pid files of the daemons started here
PACKAGES=(munge slurm-wlm slurmctld slurmd slurm-client slurmdbd mariadb-server)

log() { printf '[start_cluster] %s\n' "$*"; }
cannot() {
    printf 'start_cluster: no SLURM cluster here: %s\n' "$*"
    exit 2
}
alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds, or fail after SECONDS
    local seconds=$1
    shift
    for _ in $(seq 1 "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    "$@"
}

stop_all() {
    for name in slurmd slurmctld slurmdbd mariadb munged; do
        local pidfile="$RUN/$name.pid"
        if alive "$pidfile"; then
            log "stopping $name (pid $(cat "$pidfile"))"
            kill "$(cat "$pidfile")" || true
            for _ in $(seq 1 30); do alive "$pidfile" || break; sleep 1; done
        fi
        rm -f "$pidfile"
    done
}

node_ready() {
    local state
    state=$(sinfo -h -n "$(hostname -s)" -o %T 2>/dev/null) || return 1
    [[ "$state" == idle* || "$state" == mix* || "$state" == alloc* ]]
}

render() { # render TEMPLATE: the template beside this script with this machine's values
    sed -e "s/@CLUSTER@/$CLUSTER/g" -e "s/@HOST@/$(hostname -s)/g" -e "s/@CPUS@/$(nproc)/g" \
        -e "s/@MEM@/$(node_memory)/g" -e "s/@PARTITION@/$PARTITION/g" -e "s/@DBPASS@/$DBPASS/g" \
        "$HERE/$1"
}
node_memory() { # MB: what slurmd itself finds (a node configured with more is drained)
    local mem
    mem=$(/usr/sbin/slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    [[ -n "$mem" ]] || mem=$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)
    echo "$mem"
}

cluster_up() { # every daemon started here alive and answering, on the configs of the templates
    for name in munged mariadb slurmdbd slurmctld slurmd; do alive "$RUN/$name.pid" || return 1; done
    cmp -s <(render slurm.conf.in) /etc/slurm/slurm.conf || return 1
    cmp -s <(render slurmdbd.conf.in) /etc/slurm/slurmdbd.conf || return 1
    scontrol ping 2>/dev/null | grep -q UP && sacct -n -X -S now >/dev/null 2>&1 && node_ready
}

case "${1:-start}" in
start) ;;
stop)
    [[ $EUID -eq 0 ]] || cannot "not root (the daemons run as root, munge and slurm users)"
    stop_all
    exit 0
    ;;
*)
    echo "usage: $0 [start|stop]" >&2
    exit 64
    ;;
esac

[[ $EUID -eq 0 ]] || cannot "not root (it installs packages and starts munge, MariaDB and SLURM daemons)"
mkdir -p "$RUN"
if cluster_up; then
    log "cluster $CLUSTER already up: reused"
    exit 0
fi

# --- 1. packages --------------------------------------------------------------------------------
need=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
    command -v apt-get >/dev/null || cannot "no apt-get to install ${need[*]}"
    log "installing ${need[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

# --- 2. munge -----------------------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating the munge key"
    /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge /etc/munge/munge.key
chmod 700 /etc/munge
chmod 600 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge /var/log/munge /var/lib/munge
if ! alive "$RUN/munged.pid"; then
    log "starting munged"
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid </dev/null >/dev/null 2>&1
    wait_for 20 test -s /run/munge/munged.pid
    cp /run/munge/munged.pid "$RUN/munged.pid"
fi
munge -n | unmunge >/dev/null

# --- 3. MariaDB and the accounting database ---------------------------------------------------------
install -d -o mysql -g mysql -m 755 /run/mysqld
if [[ ! -d /var/lib/mysql/mysql ]]; then
    log "initialising the MariaDB data directory"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
fi
if ! alive "$RUN/mariadb.pid"; then
    log "starting MariaDB"
    /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
        --pid-file=/run/mysqld/mysqld.pid --bind-address=127.0.0.1 \
        --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 \
        </dev/null >>/var/log/mysql-local.log 2>&1 &
    echo $! >"$RUN/mariadb.pid"
    wait_for 60 mariadb-admin ping
fi
mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
            CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

# --- 4. configs from the templates ----------------------------------------------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(node_memory)
CTLD_WAS_RUNNING=0
alive "$RUN/slurmctld.pid" && CTLD_WAS_RUNNING=1
install -d -o slurm -g slurm -m 755 /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm /run/slurm
fill() { # fill TEMPLATE DEST MODE: succeeds when DEST changed
    render "$1" >"$2.new"
    local changed=0
    cmp -s "$2.new" "$2" || changed=1
    mv "$2.new" "$2"
    chmod "$3" "$2"
    return $((1 - changed))
}
CONF_CHANGED=0
fill slurm.conf.in /etc/slurm/slurm.conf 644 && CONF_CHANGED=1
DBD_CHANGED=0
fill slurmdbd.conf.in /etc/slurm/slurmdbd.conf 600 && DBD_CHANGED=1
chown slurm:slurm /etc/slurm/slurmdbd.conf
if ((DBD_CHANGED)) && alive "$RUN/slurmdbd.pid"; then # slurmdbd reads its config only at start
    log "slurmdbd.conf changed: restarting slurmdbd"
    kill "$(cat "$RUN/slurmdbd.pid")"
    for _ in $(seq 1 30); do alive "$RUN/slurmdbd.pid" || break; sleep 1; done
    rm -f "$RUN/slurmdbd.pid"
fi

# --- 5. daemons -----------------------------------------------------------------------------------
start_daemon() { # start_daemon NAME: SLURM daemons write their own pid file in /run/slurm
    local name=$1
    alive "$RUN/$name.pid" && return 0
    log "starting $name"
    rm -f "/run/slurm/$name.pid"
    "/usr/sbin/$name" </dev/null >/dev/null 2>&1
    wait_for 30 alive "/run/slurm/$name.pid"
    cp "/run/slurm/$name.pid" "$RUN/$name.pid"
}
start_daemon slurmdbd
wait_for 30 sacctmgr -n list cluster
# the cluster must be in the database before slurmctld registers with it
sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
start_daemon slurmctld
wait_for 30 sh -c 'scontrol ping | grep -q UP'
start_daemon slurmd
if ((CONF_CHANGED && CTLD_WAS_RUNNING)); then
    log "slurm.conf changed: scontrol reconfigure"
    scontrol reconfigure
fi

# --- 6. account and user --------------------------------------------------------------------------
sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT" ||
    sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="cytotrial tests" Organization=cytotrial >/dev/null
sacctmgr -n -P list assoc user=root account="$ACCOUNT" format=user | grep -qx root ||
    sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null

# --- 7. the node accepts jobs ---------------------------------------------------------------------
for _ in $(seq 1 30); do
    node_ready && break
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
    if [[ "$state" == down* || "$state" == drain* ]]; then
        scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true
    fi
    sleep 1
done
node_ready || {
    echo "start_cluster: node $HOST is not ready: $(sinfo -h -N -o '%T %E' 2>&1)" >&2
    exit 1
}
srun -A "$ACCOUNT" -p "$PARTITION" -t 1 true
log "cluster $CLUSTER up: partition $PARTITION, node $HOST ($CPUS CPUs, $MEM MB), account $ACCOUNT"
