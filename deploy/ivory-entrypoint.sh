#!/bin/sh
# Starts `ivory node` as member ORDINAL+1 of a StatefulSet (pod name NAME-ORDINAL), or runs the
# given arguments (e.g. `serve`, `cluster status ...`) when there are any.
#   IVORY_PEER_DOMAIN  the headless Service's domain, e.g. ivory.default.svc.cluster.local
#   IVORY_PORT         the port every member listens on (default 7001)
# Pod 0 creates the cluster alone; pods 1..N join through pod 0 on their first start (a restart
# finds the cluster in its data directory). Every member advertises its stable DNS name.
set -eu
if [ "$#" -gt 0 ]; then exec ivory "$@"; fi
: "${IVORY_PEER_DOMAIN:?set IVORY_PEER_DOMAIN to the headless Service's domain}"
port="${IVORY_PORT:-7001}"
name="${HOSTNAME:-$(hostname)}"
ordinal="${name##*-}"
base="${name%-*}"
id=$((ordinal + 1))
self="$name.$IVORY_PEER_DOMAIN:$port"
seed="$base-0.$IVORY_PEER_DOMAIN:$port"
export IVORY_LISTEN="0.0.0.0:$port" IVORY_ADVERTISE_ADDR="$self" IVORY_ID="$id"
if [ "$ordinal" = 0 ]; then
  exec ivory node --initial-cluster "1=$self"
else
  exec ivory node --join "$seed"
fi
