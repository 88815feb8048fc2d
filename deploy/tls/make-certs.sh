#!/usr/bin/env bash
# Makes a certificate authority and the certificates a Corral fabric needs:
# one per host (for its client, route and leaf listeners, and as the
# client certificate its routes and leaf connections present), and one
# client certificate for operators (corralctl --tlscert/--tlskey).
#
#   deploy/tls/make-certs.sh OUT_DIR HOST=ADDRESS [HOST=ADDRESS ...]
#   deploy/tls/make-certs.sh /etc/corral/tls a=10.0.0.1 b=10.0.0.2 c=10.0.0.3
#
# OUT_DIR gets ca.pem (give it to every host and client), ca-key.pem (keep
# it offline: it signs certificates), HOST.pem and HOST-key.pem for each
# host (copy to that host only), and client.pem / client-key.pem. Each host
# certificate names the host, its address, localhost and 127.0.0.1. An
# ADDRESS that is not an IP is put in as a DNS name. Needs openssl.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
out=$1
shift
mkdir -p "$out"
umask 077
days=825

if [ ! -f "$out/ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$out/ca-key.pem" -out "$out/ca.pem" -days 3650 \
    -subj "/CN=Corral CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

sign() { # name subject-alt-names extended-key-usage
  local name=$1 san=$2 eku=$3
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$out/$name-key.pem" -out "$out/$name.csr" -subj "/CN=$name" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=%s\nkeyUsage=critical,digitalSignature,keyEncipherment\n' "$san" "$eku" >"$out/$name.ext"
  openssl x509 -req -in "$out/$name.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" -CAcreateserial \
    -out "$out/$name.pem" -days "$days" -extfile "$out/$name.ext" 2>/dev/null
  rm -f "$out/$name.csr" "$out/$name.ext"
}

for host in "$@"; do
  name=${host%%=*}
  addr=${host#*=}
  if [ "$name" = "$host" ] || [ -z "$name" ] || [ -z "$addr" ]; then
    echo "make-certs: $host is not HOST=ADDRESS" >&2
    exit 2
  fi
  if [[ $addr =~ ^[0-9.]+$ || $addr == *:* ]]; then
    alt="IP:$addr"
  else
    alt="DNS:$addr"
  fi
  # Servers and routes: a route is a client of the other member too.
  sign "$name" "DNS:$name,$alt,DNS:localhost,IP:127.0.0.1" "serverAuth,clientAuth"
done
sign client "DNS:client" "clientAuth"
rm -f "$out/ca.srl"
chmod 0644 "$out"/*.pem
chmod 0600 "$out"/*-key.pem
echo "certificates in $out: ca.pem, $(printf '%s.pem ' "${@%%=*}")client.pem (and their -key.pem)"
