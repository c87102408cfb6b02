#!/usr/bin/env bash
# TLS through the weft tool with real peers (tls.md SSLEP-*, TLS-49): a CA and
# a server certificate for 127.0.0.1 made with the openssl command; then
# `openssl s_client` against `weft echo ssl:` (and --lines, and every backend),
# curl --cacert through `weft portforward ssl:… --to tcp:` in front of
# python3 -m http.server (64 MiB byte-exact), Python's ssl module as a client of
# `weft echo ssl:` and as the server of `weft connect tls:` and `weft
# portforward --to tls:`, `weft connect tls:…:trustRoots=DIR` against
# `weft echo ssl:` (bytes both ways, byte-exact), `weft portforward tcp:… --to
# tls:`/`--to ssl:` originating TLS, `weft exec ssl:… -- cat`, a bad
# certificate path (clear error, exit 2) and a client that does not trust the
# CA (clear error, exit 1). Traffic stays on 127.0.0.1.
set -euo pipefail
weft=$1
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

for tool in openssl curl python3 nc; do
  command -v "$tool" >/dev/null || { echo "weft_tls: $tool is not installed"; exit 1; }
done

fail() { echo "weft_tls: $*"; exit 1; }

# ---- certificates: a CA, a server certificate for 127.0.0.1 it signed, and a stranger CA ----
pki=$work/pki
mkdir -p "$pki/ca" "$pki/other"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${ec[@]}" -keyout "$pki/ca.key" -out "$pki/ca/ca.pem" -days 2 -subj /CN=weft-test-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl req "${ec[@]}" -keyout "$pki/key.pem" -out "$pki/server.csr" -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$pki/san.ext"
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
  -out "$pki/cert.pem" -days 2 -extfile "$pki/san.ext" 2>/dev/null
openssl req -x509 "${ec[@]}" -keyout "$pki/other.key" -out "$pki/other/ca.pem" -days 2 -subj /CN=stranger \
  -addext basicConstraints=critical,CA:TRUE 2>/dev/null
keys="privateKey=$pki/key.pem:certKey=$pki/cert.pem"

# sclient PORT INPUT-FILE OUTPUT-FILE: openssl s_client, verifying chain and address, sends the input, waits a
# moment for the answer, then closes.
sclient() {
  (cat "$2"; sleep 1) | timeout 20 openssl s_client -quiet -no_ign_eof -verify_return_error \
    -CAfile "$pki/ca/ca.pem" -verify_ip 127.0.0.1 -connect "127.0.0.1:$1" >"$3" 2>"$3.err" ||
    { cat "$3.err"; fail "s_client to port $1 failed"; }
}

printf 'hello over TLS\nsecond line\n' >"$work/lines"
head -c 1048576 /dev/urandom >"$work/payload"

# ---- weft echo ssl: against openssl s_client, on every backend ----
for backend in epoll poll select; do
  start "echo-$backend" --reactor "$backend" echo "ssl:0:interface=127.0.0.1:$keys"
  sclient "$PORT" "$work/lines" "$work/s_client.out"
  cmp "$work/lines" "$work/s_client.out" || fail "$backend: s_client echo differs: $(cat "$work/s_client.out")"
  stop "$PID" "echo-$backend"
done

# ---- weft echo --lines ssl: (key and certificate in one file) ----
cat "$pki/cert.pem" "$pki/key.pem" >"$pki/both.pem"
start echo-lines echo --lines --max-line 20 "ssl:0:interface=127.0.0.1:privateKey=$pki/both.pem"
sclient "$PORT" "$work/lines" "$work/lines.out"
cmp "$work/lines" "$work/lines.out" || fail "echo --lines over TLS differs: $(cat "$work/lines.out")"
stop "$PID" echo-lines

# ---- weft connect tls: against weft echo ssl:: bytes both ways, byte-exact ----
start echo-tls echo "ssl:0:interface=127.0.0.1:$keys"
echoPid=$PID echoPort=$PORT
timeout 30 "$weft" connect "tls:127.0.0.1:$echoPort:trustRoots=$pki/ca" <"$work/payload" >"$work/connect.out" \
  2>"$work/connect.err" || { cat "$work/connect.err"; fail "weft connect tls: failed"; }
cmp "$work/payload" "$work/connect.out" || fail "weft connect tls: echo differs"

# A client that does not trust the CA fails with a clear message.
rc=0
timeout 30 "$weft" connect "tls:127.0.0.1:$echoPort:trustRoots=$pki/other" </dev/null >/dev/null \
  2>"$work/untrusted.err" || rc=$?
[ "$rc" -eq 1 ] || { cat "$work/untrusted.err"; fail "an untrusting client exited $rc, not 1"; }
grep -q "certificate verify failed" "$work/untrusted.err" ||
  { cat "$work/untrusted.err"; fail "no verification failure named"; }
[ "$(wc -l <"$work/untrusted.err")" = 1 ] || { cat "$work/untrusted.err"; fail "a failed handshake: not one line"; }
# So does a name the certificate does not hold (tls: verifies by default).
rc=0
timeout 30 "$weft" connect "tls:localhost:$echoPort:trustRoots=$pki/ca:endpoint=tcp\\:127.0.0.2\\:1" \
  </dev/null >/dev/null 2>"$work/refused.err" || rc=$?
[ "$rc" -eq 1 ] || { cat "$work/refused.err"; fail "a refused nested endpoint exited $rc, not 1"; }

# Python's ssl module as the client of weft echo ssl: (1 MiB both ways).
cat >"$work/pyclient.py" <<'PY'
import socket, ssl, sys, threading
port, cafile, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
data = open(path, "rb").read()
ctx = ssl.create_default_context(cafile=cafile)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
threading.Thread(target=s.sendall, args=(data,), daemon=True).start()
got = bytearray()
while len(got) < len(data):
    chunk = s.recv(65536)
    if not chunk: break
    got += chunk
sys.exit(0 if bytes(got) == data else 1)
PY
timeout 30 python3 "$work/pyclient.py" "$echoPort" "$pki/ca/ca.pem" "$work/payload" || fail "Python's ssl client: echo differs"

# ---- Python's ssl module as the server: weft connect tls: and portforward --to tls: ----
cat >"$work/pyserver.py" <<'PY'
import socket, ssl, sys, threading
cert, key, portfile = sys.argv[1:4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(8)
open(portfile, "w").write(str(ls.getsockname()[1]))
def serve(c):
    s = ctx.wrap_socket(c, server_side=True)
    while True:
        d = s.recv(65536)
        if not d: break
        s.sendall(d)
    try: s.unwrap()
    except (OSError, ssl.SSLError): pass
    s.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
python3 "$work/pyserver.py" "$pki/cert.pem" "$pki/key.pem" "$work/pyserver.port" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/pyserver.port" ] && break; sleep 0.05; done
pyPort=$(cat "$work/pyserver.port")
timeout 30 "$weft" connect "tls:127.0.0.1:$pyPort:trustRoots=$pki/ca" <"$work/payload" >"$work/py-connect.out" \
  2>"$work/py-connect.err" || { cat "$work/py-connect.err"; fail "weft connect tls: to Python's ssl server failed"; }
cmp "$work/payload" "$work/py-connect.out" || fail "weft connect tls: to Python's ssl server differs"
start forward-py portforward tcp:0:interface=127.0.0.1 --to "tls:127.0.0.1:$pyPort:trustRoots=$pki/ca"
timeout 30 nc -N 127.0.0.1 "$PORT" <"$work/payload" >"$work/forward-py.out" || fail "nc through --to tls: (Python) failed"
cmp "$work/payload" "$work/forward-py.out" || fail "portforward --to tls: to Python's ssl server differs"
stop "$PID" forward-py

# ---- weft portforward tcp: --to tls: / ssl: originates TLS ----
start forward-tls portforward tcp:0:interface=127.0.0.1 --to "tls:127.0.0.1:$echoPort:trustRoots=$pki/ca"
fwdPid=$PID
timeout 30 nc -N 127.0.0.1 "$PORT" <"$work/payload" >"$work/forward-tls.out" || fail "nc through --to tls: failed"
cmp "$work/payload" "$work/forward-tls.out" || fail "portforward --to tls: differs"
stop "$fwdPid" forward-tls
start forward-ssl portforward tcp:0:interface=127.0.0.1 \
  --to "ssl:127.0.0.1:$echoPort:caCertsDir=$pki/ca:hostname=127.0.0.1"
fwdPid=$PID
timeout 30 nc -N 127.0.0.1 "$PORT" <"$work/payload" >"$work/forward-ssl.out" || fail "nc through --to ssl: failed"
cmp "$work/payload" "$work/forward-ssl.out" || fail "portforward --to ssl: differs"
stop "$fwdPid" forward-ssl
stop "$echoPid" echo-tls

# ---- weft portforward ssl: --to tcp: terminates TLS in front of a plain HTTP server ----
mkdir "$work/www" && printf 'hello from the backend\n' >"$work/www/index.txt"
httpPort=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server "$httpPort" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -s "http://127.0.0.1:$httpPort/" >/dev/null && break; sleep 0.1; done
start forward-https portforward "ssl:0:interface=127.0.0.1:$keys" --to "tcp:127.0.0.1:$httpPort"
body=$(curl -sS --max-time 10 --cacert "$pki/ca/ca.pem" "https://127.0.0.1:$PORT/index.txt")
[ "$body" = "hello from the backend" ] || fail "curl through portforward ssl: got: $body"
# 64 MiB through the TLS-terminating forwarder, byte-exact.
head -c 67108864 /dev/urandom >"$work/www/big.bin"
curl -sS --max-time 120 --cacert "$pki/ca/ca.pem" -o "$work/big.out" "https://127.0.0.1:$PORT/big.bin" ||
  fail "curl of 64 MiB through portforward ssl: failed"
cmp "$work/www/big.bin" "$work/big.out" || fail "64 MiB through portforward ssl: differs"
# curl without the CA refuses the server.
if curl -sS --max-time 10 "https://127.0.0.1:$PORT/index.txt" >/dev/null 2>&1; then
  fail "curl trusted a certificate from an unknown CA"
fi
stop "$PID" forward-https

# ---- weft exec ssl: -- cat ----
start exec-tls exec "ssl:0:interface=127.0.0.1:$keys" -- cat
sclient "$PORT" "$work/lines" "$work/exec.out"
cmp "$work/lines" "$work/exec.out" || fail "exec cat over TLS differs: $(cat "$work/exec.out")"
stop "$PID" exec-tls

# ---- a TLS client against a plaintext server, standard input still open ----
# The server echoes the ClientHello; the handshake fails at once. It used to hang until stdin
# ended: the close below waited for stdin, registered as the connection's producer.
start plain echo tcp:0:interface=127.0.0.1
rc=0
timeout 10 "$weft" connect "tls:127.0.0.1:$PORT" < <(sleep 15) >/dev/null 2>"$work/plain.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "cannot connect.*TLS handshake" "$work/plain.err" ||
  { cat "$work/plain.err"; fail "tls: to a plaintext server with stdin open exited $rc, not 1 at once"; }
stop "$PID" plain

# ---- a bad certificate path: a clear error naming it, exit 2, nothing listens ----
bad="ssl:0:interface=127.0.0.1:privateKey=$work/missing.pem"
badRun() {  # badRun NAME ARGS...: must exit 2 naming privateKey and the path
  local name=$1 rc=0; shift
  "$weft" "$@" >"$work/bad.out" 2>&1 || rc=$?
  [ "$rc" -eq 2 ] || { cat "$work/bad.out"; fail "$name with a missing key exited $rc, not 2"; }
  grep -q "privateKey" "$work/bad.out" && grep -q "missing.pem" "$work/bad.out" ||
    { cat "$work/bad.out"; fail "$name: the error does not name privateKey and the path"; }
}
badRun echo echo "$bad"
badRun portforward portforward "$bad" --to tcp:127.0.0.1:1
badRun exec exec "$bad" -- cat
# An encrypted key: refused with the reason, and nothing prompts for its passphrase (OpenSSL's
# default asks "Enter PEM pass phrase:" and reads the terminal or standard input). "secret" waits
# on stdin for a reader that must never come.
openssl pkey -in "$pki/key.pem" -aes128 -passout pass:secret -out "$work/enc.pem" 2>/dev/null
rc=0
echo secret | timeout 10 "$weft" echo "ssl:0:interface=127.0.0.1:privateKey=$work/enc.pem:certKey=$pki/cert.pem" \
  >"$work/bad.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q "enc.pem.*is encrypted" "$work/bad.out" && ! grep -qi "pass phrase" "$work/bad.out" ||
  { cat "$work/bad.out"; fail "an encrypted key: exit $rc"; }
rc=0
"$weft" connect "tls:127.0.0.1:1:trustRoots=$work/nowhere" </dev/null >"$work/bad.out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] && grep -q "trustRoots" "$work/bad.out" || { cat "$work/bad.out"; fail "bad trustRoots: exit $rc"; }

echo "weft_tls: OK"
