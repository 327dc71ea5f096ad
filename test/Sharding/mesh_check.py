#!/usr/bin/env python3
"""Layout invariance, checked from outside: a layer built for several meshes
and run under mpirun writes output files byte-identical to the one-process
run, for the same global batch and weights (spec, "Sharding").

  mesh_check.py --bin DIR --example FILE.moe --set a=1,b=2 --meshes ep=2,dp=2;ep=4
                --tokens 1,37,300 [--skewed] [--work DIR]

Meshes are separated by ';'. Each case prints one line, `same` or `DIFFER`;
the exit status is 1 if any differs or fails. Weights and inputs are written
here to safetensors files (random normal, seeded), so every rank reads its
shard of the same files; --skewed zeroes the router, so every token goes to
the first experts (one expert gets every token; the ranks of the other
experts receive none)."""
import argparse
import json
import os
import shutil
import struct
import subprocess
import tempfile
import sys

import numpy as np

MPIRUN = ["mpirun", "--oversubscribe", "--allow-run-as-root", "--mca", "btl_vader_single_copy_mechanism", "none"]


def signature(path):
    """The signature JSON of a .moeb artifact (docs/artifact.md)."""
    data = open(path, "rb").read()
    count = struct.unpack_from("<I", data, 12)[0]
    for i in range(count):
        at = 32 + 48 * i
        name = data[at:at + 24].rstrip(b"\0").decode()
        offset, size = struct.unpack_from("<QQ", data, at + 24)
        if name == "signature":
            return json.loads(data[offset:offset + size])
    raise SystemExit("no signature in " + path)


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, array) in tensors.items():
        if dtype == "BF16":
            bits = np.ascontiguousarray(array, dtype=np.float32).view(np.uint32)
            blob = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16).tobytes()
        elif dtype == "F16":
            blob = array.astype(np.float16).tobytes()
        elif dtype == "I32":
            blob = array.astype(np.int32).tobytes()
        else:
            blob = array.astype(np.float32).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    open(path, "wb").write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--example", required=True)
    p.add_argument("--set", default="")
    p.add_argument("--meshes", required=True)
    p.add_argument("--tokens", default="1,37,300")
    p.add_argument("--skewed", action="store_true")
    p.add_argument("--work", default=".")
    a = p.parse_args()
    # A fresh directory: the mesh artifacts are reused across token counts
    # within a run, never across runs (they would hide a compiler change).
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work, exist_ok=True)
    moec, moe_run = os.path.join(a.bin, "moec"), os.path.join(a.bin, "moe-run")
    sets = ["--set", a.set] if a.set else []
    base = os.path.join(a.work, "one.moeb")
    subprocess.run([moec, "build", a.example, *sets, "-o", base], check=True, stdout=subprocess.DEVNULL)
    sig = signature(base)
    rng = np.random.default_rng(7)
    weights = {}
    for spec in sig["params"]:
        shape = spec["shape"]
        values = rng.standard_normal(shape).astype(np.float32) / np.sqrt(max(1, shape[1] if len(shape) == 3 else shape[0]))
        if a.skewed and "router" in spec["name"]:
            values[...] = 0
        weights[spec["name"]] = (spec["dtype"], values)
    wpath = os.path.join(a.work, "weights.safetensors")
    write_safetensors(wpath, weights)
    failures = 0
    meshes = [m for m in a.meshes.split(";") if m]
    for tokens in [int(t) for t in a.tokens.split(",")]:
        inputs = {}
        for spec in sig["inputs"]:
            shape = [tokens if isinstance(d, str) else d for d in spec["shape"]]
            inputs[spec["name"]] = (spec["dtype"], rng.standard_normal(shape).astype(np.float32))
        xpath = os.path.join(a.work, "x%d.safetensors" % tokens)
        write_safetensors(xpath, inputs)
        want = os.path.join(a.work, "one-%d.safetensors" % tokens)
        subprocess.run([moe_run, base, "--weights", wpath, "--input", xpath, "--output", want], check=True,
                       stdout=subprocess.DEVNULL)
        for mesh in meshes:
            art = os.path.join(a.work, "mesh-%s.moeb" % mesh.replace(",", "_").replace("=", ""))
            if not os.path.exists(art):
                subprocess.run([moec, "build", a.example, *sets, "--mesh", mesh, "-o", art], check=True,
                               stdout=subprocess.DEVNULL)
            ranks = 1
            for axis in mesh.split(","):
                ranks *= int(axis.split("=")[1]) if "=" in axis else 1
            got = os.path.join(a.work, "got.safetensors")
            if os.path.exists(got):
                os.remove(got)
            # A session directory of its own: concurrent jobs (lit's workers) sharing
            # Open MPI's default one under /tmp have failed to start ("orte_session_dir failed").
            with tempfile.TemporaryDirectory(prefix="ompi-", dir="/tmp") as session:
                run = subprocess.run([*MPIRUN, "--mca", "orte_tmpdir_base", session, "-n", str(ranks), moe_run, art,
                                      "--weights", wpath, "--input", xpath, "--output", got],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
            name = "%s mesh %s (%d ranks) tokens %d%s" % (os.path.basename(a.example), mesh, ranks, tokens,
                                                          " skewed" if a.skewed else "")
            if run.returncode != 0 or not os.path.exists(got):
                print("%s: FAILED (exit %d)\n%s" % (name, run.returncode, run.stdout[-2000:]))
                failures += 1
            elif open(got, "rb").read() == open(want, "rb").read():
                print("%s: same" % name)
            else:
                print("%s: DIFFER" % name)
                failures += 1
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
