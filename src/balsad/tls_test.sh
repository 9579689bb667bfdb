#!/usr/bin/env bash
# balsad with mutual TLS on client and peer URLs, certificates made here with openssl:
#  - a 3-member cluster elects a leader over mTLS peer links and serves etcdctl --cacert/--cert/--key;
#  - curl over https reaches /health with a client certificate and is refused without one;
#  - plaintext gRPC and HTTP on the TLS client port are refused, and so is plaintext on the peer port;
#  - a fourth process whose certificates another CA signed cannot join (its peers refuse it);
#  - bad TLS flags fail at startup with a message naming the flag.
set -uo pipefail
BALSAD=${1:?usage: tls_test.sh path/to/balsad}
command -v etcdctl >/dev/null && command -v openssl >/dev/null && command -v curl >/dev/null || exit 77
CSCHEME=https PSCHEME=https
source "$(dirname "$0")/test_lib.sh"

# ---- certificates: CA A (the cluster's), CA B (a stranger's) ----------------------------------
mkca() {  # mkca <dir>
  mkdir -p "$1"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=test-ca-$(basename "$1")" \
    -keyout "$1/ca.key" -out "$1/ca.pem" 2>/dev/null || fail "openssl CA $1"
}
mkcert() {  # mkcert <ca dir> <name>: server+client certificate for 127.0.0.1
  local d=$1 n=$2
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$n" -keyout "$d/$n.key" -out "$d/$n.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$d/$n.ext"
  openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile "$d/$n.ext" -out "$d/$n.pem" 2>/dev/null || fail "openssl cert $n"
}
mkca "$DIR/caA"; mkca "$DIR/caB"
for n in "${NAMES[@]}" client; do mkcert "$DIR/caA" "$n"; done
mkcert "$DIR/caB" intruder

tls_flags() {  # tls_flags <ca dir> <cert name>
  TLS=(--cert-file "$1/$2.pem" --key-file "$1/$2.key" --trusted-ca-file "$1/ca.pem" --client-cert-auth
       --peer-cert-file "$1/$2.pem" --peer-key-file "$1/$2.key" --peer-trusted-ca-file "$1/ca.pem" --peer-client-cert-auth)
}

for n in "${NAMES[@]}"; do tls_flags "$DIR/caA" "$n"; start "$n" "${TLS[@]}"; done
export ETCDCTL_CACERT=$DIR/caA/ca.pem ETCDCTL_CERT=$DIR/caA/client.pem ETCDCTL_KEY=$DIR/caA/client.key
L=$(leader 20) || fail "no leader over mutual TLS peer links"
echo "leader: $L"
grep -q "serving peer traffic on .* (mutual TLS)" "$DIR/$L.log" || fail "peer transport did not report mutual TLS"

EPS=$(for n in "${NAMES[@]}"; do printf 'https://127.0.0.1:%s,' "${CPORT[$n]}"; done)
EPS=${EPS%,}
etcdctl --endpoints="$EPS" put tls-key tls-value >/dev/null || fail "put over TLS"
[[ $(etcdctl --endpoints="$EPS" get tls-key --print-value-only) == tls-value ]] || fail "get over TLS"
env -u ETCDCTL_CACERT -u ETCDCTL_CERT -u ETCDCTL_KEY etcdctl --endpoints="$EPS" --cacert "$DIR/caA/ca.pem" --cert "$DIR/caA/client.pem" --key "$DIR/caA/client.key" \
  endpoint health >"$DIR/health.out" 2>&1 || fail "etcdctl --cacert --cert --key endpoint health: $(cat "$DIR/health.out")"
echo "ok: etcdctl over mTLS"

# Without a client certificate (client-cert-auth): refused.
out=$(env -u ETCDCTL_CERT -u ETCDCTL_KEY etcdctl --endpoints="https://$(ep t1)" --dial-timeout=2s --command-timeout=3s get tls-key 2>&1) &&
  fail "a client without a certificate was served: $out"
# A client certificate from another CA: refused.
out=$(env -u ETCDCTL_CERT -u ETCDCTL_KEY etcdctl --endpoints="https://$(ep t1)" --cert "$DIR/caB/intruder.pem" \
  --key "$DIR/caB/intruder.key" --dial-timeout=2s --command-timeout=3s get tls-key 2>&1) &&
  fail "a client certificate from another CA was accepted: $out"
[[ $out == *"context deadline exceeded"* || $out == *"certificate"* || $out == *"handshake"* ]] ||
  fail "unexpected error for a foreign client certificate: $out"
# Plaintext gRPC on the TLS port: refused.
out=$(env -u ETCDCTL_CACERT -u ETCDCTL_CERT -u ETCDCTL_KEY etcdctl --endpoints="http://$(ep t1)" --dial-timeout=2s \
  --command-timeout=3s get tls-key 2>&1) && fail "plaintext gRPC on the TLS port was served: $out"
grep -q "rejected connection from .*TLS handshake failed" "$DIR/t1.log" || fail "no log line for the refused handshakes"
echo "ok: no certificate, a foreign CA's certificate and plaintext gRPC are refused on the client port"

# HTTP/1.1 over TLS: curl with the client certificate is served; plaintext HTTP is refused.
body=$(curl -s --max-time 5 --cacert "$DIR/caA/ca.pem" --cert "$DIR/caA/client.pem" --key "$DIR/caA/client.key" \
  "https://127.0.0.1:${CPORT[t1]}/health")
[[ $body == '{"health":"true"}' ]] || fail "curl https /health: '$body'"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:${CPORT[t1]}/health")
[[ $code == 000 ]] || fail "plaintext HTTP on the TLS port answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$DIR/caA/ca.pem" "https://127.0.0.1:${CPORT[t1]}/health")
[[ $code == 000 ]] || fail "https without a client certificate answered $code"
echo "ok: curl https with a client certificate; plaintext and certificate-less HTTP refused"

# Plaintext on the peer port: the TLS handshake fails, nothing is served.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 --http2-prior-knowledge "http://127.0.0.1:${PPORT[t1]}/")
[[ $code == 000 ]] || fail "plaintext on the TLS peer port answered $code"

# A member with another CA's certificate cannot join: it claims t3's place (t3 stopped) and
# must never see a leader, while t1 and t2 keep serving.
stop t3
mv "$DIR/t3.log" "$DIR/t3-before.txt"
tls_flags "$DIR/caB" intruder
DATA_DIR=$DIR/intruder start t3 "${TLS[@]}"
sleep 4
etcdctl --endpoints="https://$(ep t1)" put after-intruder ok >/dev/null || fail "the cluster stopped serving"
grep -q "certificate verify failed" "$DIR/t3.log" || fail "the intruder's log shows no refused handshake"
grep -q "elected leader" "$DIR/t3.log" && fail "the member with another CA's certificate joined"
[[ $(status_field "$(ep t1)" raftAppliedIndex) -gt 0 ]] || fail "t1 status"
echo "ok: a member whose certificate another CA signed is refused by its peers"
kill -TERM "${PID[t3]}"; wait "${PID[t3]}" 2>/dev/null; unset "PID[t3]"

# Bad TLS flags: a clear error naming the flag, exit 2 (or 1 for unreadable files).
chk() {  # chk <expected text> <flags...>
  local want=$1; shift
  out=$("$BALSAD" --name x --data-dir "$DIR/x" "$@" 2>&1) && fail "balsad started with $*"
  [[ $out == *"$want"* ]] || fail "for $*: expected '$want' in: $out"
}
chk "--listen-client-urls: https://127.0.0.1:1 is https:// but neither" --listen-client-urls https://127.0.0.1:1
chk "--cert-file and --key-file go together" --cert-file "$DIR/caA/t1.pem"
chk "--client-cert-auth: needs --trusted-ca-file" --client-cert-auth
chk "--peer-auto-tls: is not supported" --peer-auto-tls
chk "unknown or unsupported cipher suite 'TLS_FOO'" --cipher-suites TLS_FOO
chk "client TLS: --key-file $DIR/caA/t2.key" --listen-client-urls https://127.0.0.1:1 --cert-file "$DIR/caA/t1.pem" \
  --key-file "$DIR/caA/t2.key"
echo "ok: bad TLS flags are refused with the flag named"

# --auto-tls: a self-signed certificate under <data-dir>/fixtures/client; etcdctl --insecure-skip-tls-verify.
read -r P1 P2 <<<"$(free_ports 2)"
"$BALSAD" --name auto --data-dir "$DIR/auto" --listen-client-urls "https://127.0.0.1:$P1" \
  --advertise-client-urls "https://127.0.0.1:$P1" --listen-peer-urls "http://127.0.0.1:$P2" \
  --initial-advertise-peer-urls "http://127.0.0.1:$P2" --auto-tls >"$DIR/auto.log" 2>&1 &
EXTRA_PIDS+=($!)
ok=0
for _ in $(seq 50); do
  env -u ETCDCTL_CACERT -u ETCDCTL_CERT -u ETCDCTL_KEY etcdctl --endpoints="https://127.0.0.1:$P1" \
    --insecure-transport=false --insecure-skip-tls-verify --dial-timeout=1s put auto ok >/dev/null 2>&1 && { ok=1; break; }
  sleep 0.2
done
[[ $ok == 1 && -s $DIR/auto/fixtures/client/cert.pem ]] || fail "--auto-tls"
echo "ok: --auto-tls"
echo PASS
