#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Two self-signed certificates for the example's two host names, in certs/ next to this script.
# For a real site use your CA's certificates (the chain file, leaf first) at the same paths.
set -eu
cd "$(dirname "$0")"
mkdir -p certs
for name in a.example.test b.example.test; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=$name" -addext "subjectAltName=DNS:$name" \
    -keyout "certs/$name.key" -out "certs/$name.crt" 2>/dev/null
done
chmod 600 certs/*.key
echo "certs/: a.example.test and b.example.test"
