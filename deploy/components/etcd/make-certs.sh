#!/bin/sh
# The certificates Membrane's etcd and agents use, made with openssl (README.md here).
#
#   make-certs.sh [--apply] DIR NODE_IP [NODE_IP...]
#
# Writes into DIR (created, mode 0700; an existing CA there is reused, so re-running
# renews the certificates without changing what the agents trust):
#   ca.crt ca.key          the CA of this etcd only. Keep ca.key off the cluster.
#   server.crt server.key  etcd's certificate: the NODE_IPs and 127.0.0.1 as subject
#                          alternative names; server and client use (etcdctl in its pod)
#   client.crt client.key  the agents' certificate (CN membrane-agent, client use only)
#   password               a random password for the etcd user "membrane" (optional auth)
#   endpoints              https://NODE_IP:12379 for each NODE_IP, comma-separated
# With --apply, also creates or updates (kubectl) the Secrets in membrane-system:
#   membrane-etcd-server   ca.crt server.crt server.key           (mounted by etcd)
#   membrane-etcd-client   ca.crt client.crt client.key password endpoints (the agents)
set -eu

apply=no
if [ "${1:-}" = "--apply" ]; then apply=yes; shift; fi
if [ $# -lt 2 ]; then
    echo "usage: $0 [--apply] DIR NODE_IP [NODE_IP...]" >&2
    exit 2
fi
dir=$1; shift
days=825
port=12379

umask 077
mkdir -p "$dir"
cd "$dir"

if [ ! -s ca.key ] || [ ! -s ca.crt ]; then
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout ca.key -out ca.crt -days 3650 -subj "/CN=membrane-etcd-ca" 2>/dev/null
fi

san="IP:127.0.0.1"
endpoints=""
for ip in "$@"; do
    [ "$ip" = 127.0.0.1 ] || san="$san,IP:$ip"
    endpoints="${endpoints:+$endpoints,}https://$ip:$port"
done

# name, CN, extendedKeyUsage, subjectAltName
issue() {
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$3"
        if [ -n "$4" ]; then echo "subjectAltName=$4"; fi
    } > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -days "$days" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

issue server membrane-etcd serverAuth,clientAuth "$san"
issue client membrane-agent clientAuth ""
if [ ! -s password ]; then
    openssl rand -hex 24 | tr -d '\n' > password
fi
printf '%s' "$endpoints" > endpoints
echo "made in $dir: ca.crt server.crt client.crt (valid $days days), password, endpoints ($endpoints)"

if [ "$apply" = yes ]; then
    kubectl get namespace membrane-system >/dev/null 2>&1 || kubectl create namespace membrane-system
    kubectl -n membrane-system create secret generic membrane-etcd-server \
        --from-file=ca.crt --from-file=server.crt --from-file=server.key \
        --dry-run=client -o yaml | kubectl apply -f -
    kubectl -n membrane-system create secret generic membrane-etcd-client \
        --from-file=ca.crt --from-file=client.crt --from-file=client.key \
        --from-file=password --from-file=endpoints \
        --dry-run=client -o yaml | kubectl apply -f -
fi
