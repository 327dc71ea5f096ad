#!/usr/bin/env python3
"""Starts N copies of a command as the ranks of one job, in torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT on a free port), as `torchrun --nproc-per-node=N --no-python` does on
one host, for machines without torchrun (moe-run's CPU ranks then talk over TCP, docs/sharding.md). Like
torchrun, the first rank to fail ends the others (after 5 s in which they may report it and exit); the exit status
is that rank's (a signal: 128 + its number).
    python3 tools/launch-ranks.py N COMMAND [ARGS...]"""
import os
import signal
import socket
import subprocess
import sys
import time

if len(sys.argv) < 3 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
    sys.exit(__doc__)
n, command = int(sys.argv[1]), sys.argv[2:]
with socket.socket() as s:  # a free port; moe-run's engine uses MASTER_PORT + 2 (torchrun's store holds MASTER_PORT)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1] - 2 if s.getsockname()[1] > 1026 else s.getsockname()[1]
env = dict(os.environ, WORLD_SIZE=str(n), LOCAL_WORLD_SIZE=str(n), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
ranks = [subprocess.Popen(command, env=dict(env, RANK=str(r), LOCAL_RANK=str(r))) for r in range(n)]
status, failed_at, terminated = 0, None, False
while ranks:
    for p in list(ranks):
        code = p.poll()
        if code is None:
            continue
        ranks.remove(p)
        if code != 0 and status == 0:
            status, failed_at = (code if code > 0 else 128 - code), time.monotonic()
    if failed_at is not None and not terminated and time.monotonic() - failed_at > 5:
        for other in ranks:
            other.send_signal(signal.SIGTERM)
        terminated = True
    time.sleep(0.01)
sys.exit(status)
