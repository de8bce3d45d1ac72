#!/usr/bin/env bash
# Makes a test CA and server certificates in DIR with openssl (nothing else): 
#   ca.pem                 the CA
#   good.pem/.key          for 127.0.0.1 and localhost, valid now
#   wrongname.pem/.key     for example.test and www.example.test, valid now
#   expired.pem/.key       for 127.0.0.1, valid in January 2020 only
#   future.pem/.key        for 127.0.0.1, valid from 2099
# `openssl ca` sets any start and end date, so no clock faking is needed.
set -euo pipefail
cd "$1"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=sioagent test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
mkdir -p db
: > db/index.txt
echo 1000 > db/serial
cat > ca.cnf <<'CNF'
[ca]
default_ca = test
[test]
dir = .
database = db/index.txt
serial = db/serial
new_certs_dir = db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
CNF
leaf() {
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" -addext "subjectAltName=$2" 2>/dev/null
    openssl ca -batch -config ca.cnf -in "$1.csr" -out "$1.pem" -startdate "$3" -enddate "$4" -notext 2>/dev/null
}
yesterday=$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)
tomorrow=$(date -u -d '+1 day' +%Y%m%d%H%M%SZ)
leaf good "IP:127.0.0.1,DNS:localhost" "$yesterday" "$tomorrow"
leaf wrongname "DNS:example.test,DNS:www.example.test" "$yesterday" "$tomorrow"
leaf expired "IP:127.0.0.1" 20200101000000Z 20200201000000Z
leaf future "IP:127.0.0.1" 20990101000000Z 20990201000000Z
