#!/bin/sh
# The certificates of the relay component: one CA, and certificates signed by it for the
# agents (server and client), the relay (server, and client of the agents) and one
# client of the relay (a person's `membrane observe` or `hubble observe`).
#
#   deploy/components/relay/make-certs.sh [DIR]      (default ./membrane-tls)
#
# then create the two Secrets it prints (or run it with APPLY=1 to create them). Keep
# ca.key somewhere safe, or delete it: only new certificates need it. NAMESPACE (default
# membrane-system) and DAYS (default 365) change what is made.
set -eu
out=${1:-membrane-tls}
ns=${NAMESPACE:-membrane-system}
days=${DAYS:-365}
mkdir -p "$out"
cd "$out"

openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" \
  -keyout ca.key -out ca.crt -subj "/CN=membrane-ca" 2>/dev/null

issue() {   # name, subjectAltName, extendedKeyUsage
  openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" -out "$1.csr" \
    -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$2" "$3" > "$1.ext"
  openssl x509 -req -sha256 -days "$days" -in "$1.csr" -CA ca.crt -CAkey ca.key \
    -CAcreateserial -out "$1.crt" -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue agent "DNS:membrane-agent,DNS:membrane-peer.$ns.svc" serverAuth,clientAuth
issue relay "DNS:membrane-relay,DNS:membrane-relay.$ns.svc,DNS:localhost" serverAuth,clientAuth
issue client "DNS:membrane-client" clientAuth

dir=$(pwd)
set -- \
  "kubectl -n $ns create secret generic membrane-agent-tls --from-file=ca.crt=$dir/ca.crt --from-file=tls.crt=$dir/agent.crt --from-file=tls.key=$dir/agent.key" \
  "kubectl -n $ns create secret generic membrane-relay-tls --from-file=ca.crt=$dir/ca.crt --from-file=tls.crt=$dir/relay.crt --from-file=tls.key=$dir/relay.key"
for cmd in "$@"; do
  if [ "${APPLY:-0}" = 1 ]; then sh -c "$cmd"; else echo "$cmd"; fi
done
