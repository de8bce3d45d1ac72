"""Peak resident memory of rule keys that each saw a large event (docs/benchmarks.md, "Memory
held by rule keys").

`sioagent replay` (the same rule engine as `run`) reads N events of S bytes from standard input,
each for its own key of a `for: 1h` rule, so every key stays pending with its last event. The
`read` rule's alert reads two fields of the payload; the `shell` rule's `shell` action reads the
whole event. Reported: the peak resident memory (ru_maxrss) of the replay, and a run with tiny
payloads as the baseline.

    python3 bench/key_memory.py --agent .build/release/sioagent [--keys 1000] [--size 100000]
"""

import argparse
import json
import os
import resource
import subprocess
import tempfile

RULE = """
rules:
  - id: stuck
    on: reading
    key: payload.device
    when: payload.level > 50
    for: 1h
    then:
      - %s
"""
RULES = {
    "read": RULE % 'emit: alert\n        data: {device: "{{ key }}", level: "{{ payload.level }}"}',
    "shell": RULE % 'shell: "cat > /dev/null"',
}


def peak_kb(agent, rules, keys, size):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "rules.yaml")
        with open(path, "w") as f:
            f.write(rules)
        p = subprocess.Popen([agent, "replay", "--rules", path, "-"], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        blob = "x" * size
        for i in range(keys):
            line = json.dumps({"at": i * 0.01, "event": "reading",
                               "args": [{"device": f"d{i}", "level": 60, "blob": blob}]})
            p.stdin.write(line.encode() + b"\n")
        p.stdin.close()
        err = p.stderr.read().decode()
        if p.wait() != 0:
            raise SystemExit(f"replay failed: {err}")
        # The only child of this process: its peak.
        return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", default=".build/release/sioagent")
    ap.add_argument("--keys", type=int, default=1000)
    ap.add_argument("--size", type=int, default=100_000)
    a = ap.parse_args()
    # Each measurement in its own process: RUSAGE_CHILDREN keeps the largest peak so far.
    if os.environ.get("KEY_MEMORY_ONE"):
        name, keys, size = os.environ["KEY_MEMORY_ONE"].split(":")
        print(peak_kb(a.agent, RULES[name], int(keys), int(size)))
        return
    for name, size in [("read", 10), ("read", a.size), ("shell", a.size)]:
        out = subprocess.run(["python3", __file__, "--agent", a.agent],
                             env={**os.environ, "KEY_MEMORY_ONE": f"{name}:{a.keys}:{size}"},
                             check=True, capture_output=True, text=True).stdout.strip()
        print(f"{name:5} rule, {a.keys} keys x {size} bytes: peak RSS {int(out) / 1024:.1f} MB")


if __name__ == "__main__":
    main()
