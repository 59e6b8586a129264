#!/usr/bin/env bash
# Makes the TLS test fixtures in test/fixtures/tls (committed; run again only to change them):
# a CA, two server certificates it signed for localhost and 127.0.0.1 (the second stands in for
# a renewal), one it signed for another name, and a wildcard for the HTTPS front's
# *.spore.test. Valid for a century, so tests never expire.
set -euo pipefail
cd "$(dirname "$0")/../test/fixtures/tls"
days=36500
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days $days \
  -subj "/CN=Spore test CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
leaf() { # name, subjectAltName
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
    -keyout "$1-key.pem" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days $days \
    -extfile <(printf "subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" "$3") -out "$1.pem" 2>/dev/null
  rm "$1.csr"
}
leaf server localhost "DNS:localhost,IP:127.0.0.1"
leaf renewed localhost "DNS:localhost,IP:127.0.0.1"
leaf other other.example "DNS:other.example"
leaf wildcard "*.spore.test" "DNS:spore.test,DNS:*.spore.test,DNS:localhost,IP:127.0.0.1"
rm -f ca.srl
