"""Reads Prometheus text from a URL (over HTTP) or a file and parses it strictly with
prometheus_client's parser. Prints one JSON object:
  {"status": 200, "content_type": "...", "samples": [[name, {labels}, value], ...],
   "types": {family: type}}
or {"error": "..."} (and exits 1) when the text does not parse.
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    source = sys.argv[1]
    status, content_type = None, None
    if source.startswith("http://"):
        try:
            with urllib.request.urlopen(source, timeout=10) as response:
                status = response.status
                content_type = response.headers.get("Content-Type")
                text = response.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            print(json.dumps({"status": e.code}))
            return
    else:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    try:
        samples, types = [], {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for s in family.samples:
                samples.append([s.name, s.labels, s.value])
    except Exception as e:  # the parser raises ValueError and others on malformed text
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
    print(json.dumps({"status": status, "content_type": content_type, "samples": samples, "types": types}))


if __name__ == "__main__":
    main()
