#!/usr/bin/env bash
# SFTP throughput, side by side on this machine: yadokari's endpoint against OpenSSH's own sshd
# with internal-sftp, both over loopback with the stock OpenSSH sftp client and the same cipher,
# uploading then downloading one file (256 MiB by default). Prints MB/s and the ratios.
#
#   bash bench/sftp.sh [SIZE_MIB] [ROUNDS]
#
# Needs: a release build (cargo build --release), openssh-server (sshd), openssh-client; root
# (sshd must run as root to log a user in).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-256}
rounds=${2:-3}
cipher=${CIPHER:-chacha20-poly1305@openssh.com}
bin=${YADOKARI:-${CARGO_TARGET_DIR:-target}/release/yadokari}
sshd=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
[ -x "$sshd" ] || { echo "needs openssh-server" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/site" "$work/sshd-home" "$work/down"
ssh-keygen -q -t ed25519 -N '' -f "$work/id"
ssh-keygen -q -t ed25519 -N '' -f "$work/sshd_host"
cp "$work/id.pub" "$work/authorized_keys"
head -c "$((size * 1024 * 1024))" /dev/urandom > "$work/file.bin"

# yadokari on a free port.
cat > "$work/y.toml" <<TOML
[server]
document_root = "site"
http = "127.0.0.1:0"
sftp = "127.0.0.1:0"
access_log = "/dev/null"
log_level = "warn"
[[users]]
name = "demo"
authorized_keys = "authorized_keys"
TOML
"$bin" --config "$work/y.toml" > "$work/y.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q 'listening sftp=' "$work/y.out" && break; sleep 0.1; done
yport=$(sed -n 's/^listening sftp=.*:\([0-9]*\)$/\1/p' "$work/y.out")

# sshd with internal-sftp, chrooted like a hosting account.
sport=$(( 20000 + RANDOM % 20000 ))
cat > "$work/sshd_config" <<CONF
Port $sport
ListenAddress 127.0.0.1
HostKey $work/sshd_host
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
StrictModes no
PermitRootLogin yes
PasswordAuthentication no
UsePAM no
Subsystem sftp internal-sftp
ForceCommand internal-sftp -d $work/sshd-home
CONF
mkdir -p /run/sshd   # sshd's privilege separation directory
"$sshd" -D -f "$work/sshd_config" -E "$work/sshd.log" &
pids+=($!)
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$sport) 2>/dev/null && break; sleep 0.1; done

opts=(-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
      -o BatchMode=yes -o IdentitiesOnly=yes -i "$work/id" -c "$cipher")

# seconds for one sftp batch
run() { local port=$1 user=$2 batch=$3 s e
  s=$(date +%s.%N); printf '%s\n' "$batch" | sftp "${opts[@]}" -P "$port" -b - "$user@127.0.0.1" >/dev/null
  e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f\n", e - s }'; }

best() { sort -n | head -1; }
mbps() { awk -v n="$size" -v t="$1" 'BEGIN { printf "%.1f", n * 1.048576 / t }'; }

declare -A t
for who in yadokari sshd; do
  if [ $who = yadokari ]; then port=$yport user=demo dest=file.bin; else port=$sport user=$(id -un) dest=$work/sshd-home/file.bin; fi
  up=(); down=()
  for _ in $(seq "$rounds"); do
    up+=("$(run "$port" "$user" "put $work/file.bin $dest")")
    down+=("$(run "$port" "$user" "get $dest $work/down/$who.bin")")
    cmp -s "$work/file.bin" "$work/down/$who.bin" || { echo "$who: download differs" >&2; exit 1; }
  done
  t[$who-up]=$(printf '%s\n' "${up[@]}" | best)
  t[$who-down]=$(printf '%s\n' "${down[@]}" | best)
done

printf 'file %s MiB, cipher %s, best of %s rounds\n' "$size" "$cipher" "$rounds"
for dir in up down; do
  y=$(mbps "${t[yadokari-$dir]}"); s=$(mbps "${t[sshd-$dir]}")
  printf '%-5s yadokari %7s MB/s   sshd+internal-sftp %7s MB/s   ratio %s\n' "$dir" "$y" "$s" \
    "$(awk -v a="${t[sshd-$dir]}" -v b="${t[yadokari-$dir]}" 'BEGIN { printf "%.2f", a / b }')"
done
