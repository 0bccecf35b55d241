#!/usr/bin/env bash
# Fills corpus/decode_message with one file per captured BGP message
# (bgp/tests/data/*/*.bin are back-to-back messages; each header carries its length).
set -euo pipefail
cd "$(dirname "$0")"
out=corpus/decode_message
mkdir -p "$out"
python3 - "$out" ../bgp/tests/data/*/*.bin <<'PY'
import sys, os
out = sys.argv[1]
for f in sys.argv[2:]:
    b = open(f, 'rb').read()
    i = n = 0
    while i + 19 <= len(b):
        l = int.from_bytes(b[i + 16:i + 18], 'big')
        if l < 19:
            break
        name = '%s-%s-%03d' % (os.path.basename(os.path.dirname(f)), os.path.basename(f)[:-4], n)
        open(os.path.join(out, name), 'wb').write(b[i:i + l])
        i += l
        n += 1
PY
ls "$out" | wc -l
