"""Clients that misbehave against the agent's metrics listener, over real sockets. Each mode
prints one JSON object on stdout.

  flood PORT SECONDS [HEX]  pipelines GET /metrics (or the bytes HEX, repeated) without reading
                            for SECONDS, then reads what is left:
                            {"requests", "bytes", "closed_while_sending", "responses", "eof"}
  idle PORT COUNT WAIT      opens COUNT connections that send nothing, scrapes on a new one,
                            then waits up to WAIT s for the server to close the idle ones:
                            {"opened", "scrape_status", "scrape_body_bytes", "closed", "seconds"}
  slowloris PORT WAIT       sends a request head one byte every 200 ms: {"closed_after", "received"}
  raw PORT HEX              sends the bytes, reads until the server closes or 3 s pass:
                            {"response", "eof"}
"""

import json
import select
import socket
import sys
import time

HOST = "127.0.0.1"
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: agent\r\n\r\n"


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def read_until_eof(sock, timeout):
    """All bytes until EOF, or until `timeout` seconds pass without any byte."""
    data = bytearray()
    sock.settimeout(timeout)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return bytes(data), True
            data += chunk
    except socket.timeout:
        return bytes(data), False
    except (ConnectionResetError, BrokenPipeError):
        return bytes(data), True


def flood(port, seconds, unit=REQUEST):
    sock = socket.create_connection((HOST, port))
    sock.setblocking(False)
    batch = unit * max(1, 2400 // len(unit))
    requests = 0
    sent = 0
    closed = False
    end = time.monotonic() + seconds
    pending = memoryview(batch)
    while time.monotonic() < end:
        _, writable, _ = select.select([], [sock], [], 0.2)
        if not writable:
            continue
        try:
            n = sock.send(pending)
        except BlockingIOError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        sent += n
        requests = sent // len(unit)
        pending = pending[n:]
        if len(pending) == 0:
            pending = memoryview(batch)
    sock.setblocking(True)
    data, eof = read_until_eof(sock, 15)
    out({"requests": requests, "bytes": sent, "closed_while_sending": closed, "responses": data.count(b"HTTP/1.1 200"), "eof": eof})


def scrape(port):
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n")
    data, _ = read_until_eof(sock, 10)
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else None
    return status, len(body)


def idle(port, count, wait):
    conns = []
    for _ in range(count):
        try:
            conns.append(socket.create_connection((HOST, port), timeout=5))
        except OSError:
            break
    started = time.monotonic()
    status, body = scrape(port)
    closed = set()
    deadline = started + wait
    while len(closed) < len(conns) and time.monotonic() < deadline:
        readable, _, _ = select.select([c for i, c in enumerate(conns) if i not in closed], [], [], 0.2)
        for c in readable:
            try:
                chunk = c.recv(4096)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                closed.add(conns.index(c))
    out({"opened": len(conns), "scrape_status": status, "scrape_body_bytes": body,
         "closed": len(closed), "seconds": round(time.monotonic() - started, 2)})


def slowloris(port, wait):
    sock = socket.create_connection((HOST, port))
    started = time.monotonic()
    head = b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 1000
    received = b""
    for byte in head:
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                break
            received += chunk
        if time.monotonic() - started > wait:
            break
    out({"closed_after": round(time.monotonic() - started, 2), "received": received.decode("latin-1")})


def raw(port, data):
    sock = socket.create_connection((HOST, port), timeout=5)
    sock.sendall(data)
    response, eof = read_until_eof(sock, 3)
    out({"response": response.decode("latin-1"), "eof": eof})


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "flood":
        flood(port, float(sys.argv[3]), bytes.fromhex(sys.argv[4]) if len(sys.argv) > 4 else REQUEST)
    elif mode == "idle":
        idle(port, int(sys.argv[3]), float(sys.argv[4]))
    elif mode == "slowloris":
        slowloris(port, float(sys.argv[3]))
    elif mode == "raw":
        raw(port, bytes.fromhex(sys.argv[3]))


if __name__ == "__main__":
    main()
