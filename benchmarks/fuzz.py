"""A standing fuzz harness for the `.ddc` readers (issue 17, item 8): structure-aware mutants of the golden files
through `diffcodec decode` and `diffcodec info`, each outcome checked to be a clean decode or a documented
one-line error exit, with a per-input timeout and a memory cap.

    python benchmarks/fuzz.py --inputs 100000 --seed 0 --json-out fuzz-report.json     # the long run
    python benchmarks/fuzz.py --inputs 200 --seed 1                                    # a quick look
    python benchmarks/fuzz.py --replay 0:1234 --save-failures fuzz-failures/           # one input again

How: the seed corpus is every valid `.ddc` file in formats/golden (images of every method and mode, clips). Input
``i`` of seed ``S`` is made by a generator seeded with ``"S:i"`` alone (so any input can be replayed), which applies
1-3 mutations to one corpus file. The mutations know the format (formats/ddc-v1.md) but not diffcodec's code: this
script frames chunks itself (LEB128 lengths, CRC-32s) so that a bug in the reader cannot hide from it.

* header (the `H` msgpack array): a field replaced by an interesting value (sizes 0/1/65535/65536, 2^31,
  2^64 - 1, negative, wrong types, deep nesting), dropped, or appended; keys of `params` / `rng` replaced,
  removed, added; the frame count and sizes pushed to the limits;
* payload (`D` / `P` chunks): bit flips, byte runs, insertions, deletions, truncation, extension, the leading
  LEB128 of a layered ddcm payload rewritten; every length and CRC is fixed up, so the mutant reaches the codec;
* chunks: dropped, duplicated, swapped, retyped, inserted (unknown critical and optional types, `m` / `v` / `i`
  chunks with mutated maps), a header or payload spliced in from another corpus file (another method);
* framing, a minority left unfixed on purpose: a broken CRC, a non-minimal or overlong length varint, a changed
  signature or version, raw byte havoc, truncation and trailing garbage.

Each input runs in a worker process (one `diffcodec.cli.main` call, in-process, torch on one thread) under the
decode limits given here (``--max-pixels``, ``--max-work``: small, so that every admitted decode is quick and the
timeout means a hang); the parent kills a worker that passes ``--timeout`` seconds or ``--memory-mb`` of resident
memory, records why, and starts another. Outcomes: ``ok`` (exit 0 with an output), ``exit-N`` for a documented
one-line error; failures: ``traceback`` (an exception escaped, or exit 1), ``bad-exit`` (an undocumented code or a
message that is not one line), ``hang``, ``memory``, ``crash`` (the worker died). The script exits 1 when there
is any failure; ``--save-failures DIR`` keeps the failing inputs with what happened.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import select
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

import msgpack

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "formats" / "golden"
DEFAULT_MAX_PIXELS = 1 << 16        # 256 x 256: any admitted decode takes a few seconds at most on one thread
DEFAULT_MAX_WORK = 1 << 18          # pixels x diffusion steps
FAILURES = ("traceback", "bad-exit", "hang", "memory", "crash")
EXAMPLES = 5            # inputs recorded per target and outcome (with their message), to replay and look at
TARGETS = ("decode", "info")

# ---------------------------------------------------------------------------------------------- framing
# (formats/ddc-v1.md sections 2-3, written again here on purpose)


def leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_leb128(data: bytes, pos: int) -> tuple[int, int] | None:
    value = shift = 0
    for i in range(pos, min(pos + 10, len(data))):
        value |= (data[i] & 0x7F) << shift
        shift += 7
        if not data[i] & 0x80:
            return value, i + 1
    return None


def crc(ctype: int, data: bytes) -> bytes:
    return struct.pack(">I", zlib.crc32(bytes([ctype]) + data))


class Chunk:
    def __init__(self, ctype: int, data: bytes):
        self.type, self.data = ctype, data
        self.length: bytes | None = None     # a raw length field instead of LEB128(len(data))
        self.crc: bytes | None = None        # a raw CRC instead of the right one

    def encode(self) -> bytes:
        length = self.length if self.length is not None else leb128(len(self.data))
        return bytes([self.type]) + length + self.data + (self.crc if self.crc is not None else crc(self.type,
                                                                                                 self.data))

    def copy(self) -> Chunk:
        c = Chunk(self.type, self.data)
        c.length, c.crc = self.length, self.crc
        return c


class Parsed:
    def __init__(self, signature: bytes, chunks: list[Chunk], trailing: bytes = b""):
        self.signature, self.chunks, self.trailing = signature, chunks, trailing

    @classmethod
    def parse(cls, data: bytes) -> Parsed:
        pos, chunks = 5, []
        while pos < len(data):
            got = read_leb128(data, pos + 1)
            if got is None or got[1] + got[0] + 4 > len(data):
                return cls(data[:5], chunks, data[pos:])
            n, start = got
            chunks.append(Chunk(data[pos], data[start:start + n]))
            pos = start + n + 4
        return cls(data[:5], chunks)

    def encode(self) -> bytes:
        return self.signature + b"".join(c.encode() for c in self.chunks) + self.trailing

    def copy(self) -> Parsed:
        return Parsed(self.signature, [c.copy() for c in self.chunks], self.trailing)

    def of_type(self, letters: str) -> list[int]:
        return [i for i, c in enumerate(self.chunks) if chr(c.type) in letters]


# ---------------------------------------------------------------------------------------------- values
INTERESTING_INTS = (0, 1, -1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 50, 51, 63, 64, 127, 128, 200, 255, 256, 511,
                    512, 1000, 1001, 1023, 1024, 1025, 4095, 4096, 4097, 32767, 32768, 65535, 65536, 1 << 20,
                    (1 << 20) + 1, 1 << 30, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 63) - 1, -(1 << 63),
                    (1 << 64) - 1, -128, -32768)
INTERESTING_STRS = ("", "x", "opq", "ddcm", "diffae", "mshift", "iid", "shift", "pixel", "latent", "bf16", "fp32",
                    "16-8-8", "32-8-8", "opq-16-8-8", "opq-128-32-32", "jpeg:q30", "webp:q1", "avif:q100",
                    "jpeg", "latent-ddpm", "pixel-ddpm", "opq-refiner", "codec-refiner", "diffae-pixel",
                    "latent-ae", "../../etc/passwd", "a" * 64, "a" * 65, "\u00e9t\u00e9", "bad id", "\x00",
                    "philox-np", "420", "444", "mono", "bt709", "full", "rgb", "diffae-temporal", "x264:crf30")


def deep(depth: int):
    v: object = 0
    for _ in range(depth):
        v = [v]
    return v


def interesting(rng: random.Random, like=None):
    """A value to put where ``like`` was: usually of its kind, sometimes anything."""
    r = rng.random()
    if isinstance(like, bool) or r < 0.1:
        pool = [None, True, False, 0.0, -0.0, 1.5, float("nan"), float("inf"), b"", b"\x00" * 8, bytes(range(40)),
                [], [1, 2, 3], {}, {"a": 1}, {1: 2}, deep(rng.choice((3, 31, 32, 33, 60)))]
        return rng.choice(pool)
    if isinstance(like, int) and r < 0.85:
        if rng.random() < 0.3:
            v = like + rng.choice((-2, -1, 1, 2, like, -like))
            return v if -(1 << 63) <= v < (1 << 64) else 0
        return rng.choice(INTERESTING_INTS)
    if isinstance(like, str) and r < 0.85:
        return rng.choice(INTERESTING_STRS)
    if isinstance(like, (bytes, bytearray)) and r < 0.85:
        return bytes(rng.getrandbits(8) for _ in range(rng.choice((0, 1, 4, 16, 300))))
    if isinstance(like, dict) and r < 0.85:
        return mutate_map(rng, dict(like))
    if isinstance(like, list) and r < 0.85:
        out = list(like)
        if out and rng.random() < 0.7:
            i = rng.randrange(len(out))
            out[i] = interesting(rng, out[i])
        else:
            out.append(interesting(rng))
        return out
    return rng.choice((rng.choice(INTERESTING_INTS), rng.choice(INTERESTING_STRS), None, [], {}))


KNOWN_KEYS = ("n", "k", "m", "cb", "sp", "b", "bs", "pr", "g", "s", "d", "fps", "chroma", "matrix", "range", "coded",
              "gop", "x", "t", "tm", "th", "en", "tl", "bh")


def mutate_map(rng: random.Random, m: dict) -> dict:
    r = rng.random()
    if m and r < 0.55:
        key = rng.choice(list(m))
        m[key] = interesting(rng, m[key])
    elif m and r < 0.75:
        del m[rng.choice(list(m))]
    elif r < 0.92:
        m[rng.choice(KNOWN_KEYS + ("zz", "", "\u00e9"))] = interesting(rng)
    else:
        m[rng.choice((1, b"k", None))] = 1        # keys that are not strings
    return m


def pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes):
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


# ---------------------------------------------------------------------------------------------- mutations
def m_header(rng, f: Parsed, corpus) -> None:
    idx = f.of_type("H")
    if not idx:
        return
    c = f.chunks[idx[0]]
    try:
        h = unpack(c.data)
    except Exception:
        c.data = bytes(rng.getrandbits(8) for _ in range(len(c.data)))
        return
    if not isinstance(h, list):
        h = [h]
    r = rng.random()
    if r < 0.3 and len(h) > 3:                      # width / height / frames to the limits
        i = rng.choice([i for i in (3, 4, 6) if i < len(h)] or [3])
        h[i] = rng.choice((0, 1, 2, 8, 9, 255, 256, 4096, 32767, 32768, 65535, 65536, 1 << 20, (1 << 20) + 1,
                           -1, 1 << 31))
    elif r < 0.55 and len(h) > 7 and isinstance(h[7], dict):
        h[7] = mutate_map(rng, dict(h[7]))
    elif r < 0.65 and len(h) > 8:
        h[8] = mutate_map(rng, dict(h[8])) if isinstance(h[8], dict) else interesting(rng)
    elif r < 0.85 and h:
        i = rng.randrange(len(h))
        h[i] = interesting(rng, h[i])
    elif r < 0.92 and h:
        h = h[:rng.randrange(len(h))]
    else:
        h.extend(interesting(rng) for _ in range(rng.randint(1, 3)))
    c.data = pack(h)


def m_payload(rng, f: Parsed, corpus) -> None:
    idx = f.of_type("DP")
    if not idx:
        return
    c = f.chunks[rng.choice(idx)]
    data = bytearray(c.data)
    r = rng.random()
    if data and r < 0.3:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif data and r < 0.45:
        i = rng.randrange(len(data))
        data[i:i + rng.randint(1, 8)] = bytes([rng.choice((0, 0xFF, 0x7F, 0x80, rng.getrandbits(8)))]) * rng.randint(1,
                                                                                                                    8)
    elif r < 0.55:
        i = rng.randint(0, len(data))
        data[i:i] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 16)))
    elif data and r < 0.65:
        i = rng.randrange(len(data))
        del data[i:i + rng.randint(1, 16)]
    elif r < 0.75:
        data = data[:rng.randint(0, len(data))]
    elif r < 0.82:
        data += bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 7, 100, 5000))))
    elif r < 0.92:                                  # a layered ddcm payload starts with LEB128(base length)
        got = read_leb128(bytes(data), 0)
        end = got[1] if got else 0
        value = rng.choice((0, 1, 2, len(data), len(data) - end, len(data) - end + 1, 1 << 31, rng.getrandbits(20)))
        head = leb128(max(value, 0))
        if rng.random() < 0.2:
            head = bytes(b | 0x80 for b in head) + b"\x00"        # non-minimal
        data[:end] = head
    else:
        data = bytearray(bytes(rng.getrandbits(8) for _ in range(len(data))))
    c.data = bytes(data)


def m_chunks(rng, f: Parsed, corpus) -> None:
    r = rng.random()
    n = len(f.chunks)
    if n and r < 0.2:
        del f.chunks[rng.randrange(n)]
    elif n and r < 0.4:
        i = rng.randrange(n)
        f.chunks.insert(rng.randint(0, n), f.chunks[i].copy())
    elif n > 1 and r < 0.55:
        i, j = rng.sample(range(n), 2)
        f.chunks[i], f.chunks[j] = f.chunks[j], f.chunks[i]
    elif n and r < 0.7:
        f.chunks[rng.randrange(n)].type = ord(rng.choice("HDmviPXzQ0 \x7f\xff"))
    else:
        ctype = rng.choice("mvizXDP")
        body = {"m": lambda: pack(interesting(rng, {"software": "x"})),
                "v": lambda: pack(interesting(rng, {"fps": [25, 1], "chroma": "420", "matrix": "bt601",
                                                    "range": "limited", "coded": "rgb"})),
                "i": lambda: pack(interesting(rng, [[0, 0]]))}.get(ctype, lambda: bytes(
                    rng.getrandbits(8) for _ in range(rng.choice((0, 1, 10, 300)))))()
        f.chunks.insert(rng.randint(1 if n else 0, n), Chunk(ord(ctype), body))


def m_optional(rng, f: Parsed, corpus) -> None:
    """The clip chunks and metadata: their msgpack values mutated."""
    idx = f.of_type("mvi")
    if not idx:
        m_chunks(rng, f, corpus)
        return
    c = f.chunks[rng.choice(idx)]
    try:
        c.data = pack(interesting(rng, unpack(c.data)))
    except Exception:
        c.data = bytes(rng.getrandbits(8) for _ in range(len(c.data)))


def m_splice(rng, f: Parsed, corpus) -> None:
    other = rng.choice(corpus)
    kind = rng.choice("HD")
    mine, theirs = f.of_type(kind), other.of_type(kind)
    if mine and theirs:
        f.chunks[rng.choice(mine)] = other.chunks[rng.choice(theirs)].copy()


def m_framing(rng, f: Parsed, corpus) -> None:
    """Left unfixed: a reader-level error."""
    r = rng.random()
    if f.chunks and r < 0.35:
        c = rng.choice(f.chunks)
        c.crc = bytes(rng.getrandbits(8) for _ in range(4))
    elif f.chunks and r < 0.7:
        c = rng.choice(f.chunks)
        n = len(c.data)
        c.length = rng.choice((bytes(b | 0x80 for b in leb128(n)) + b"\x00", leb128(n + 1), leb128(max(n - 1, 0)),
                               b"\xff\xff\xff\xff\x07", b"\x80\x80\x80\x80\x80\x01", leb128(1 << 31), b"\x80"))
    elif r < 0.85:
        sig = bytearray(f.signature)
        i = rng.randrange(5)
        sig[i] = rng.choice((0, 1, 2, 0xFF, sig[i] ^ 1))
        f.signature = bytes(sig)
    else:
        f.trailing += bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 3, 9, 64))))


def havoc(rng, data: bytes) -> bytes:
    """Raw bytes, nothing fixed: flips, truncation, garbage."""
    b = bytearray(data)
    r = rng.random()
    if b and r < 0.5:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] = rng.getrandbits(8)
    elif r < 0.8:
        b = b[:rng.randint(0, len(b))]
    else:
        b += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
    return bytes(b)


STRUCTURED = ((m_header, 30), (m_payload, 30), (m_chunks, 10), (m_optional, 6), (m_splice, 6), (m_framing, 8))


def make_input(seed: int, i: int, corpus: list[tuple[str, bytes]]) -> tuple[str, bytes, list[str]]:
    """(corpus file name, mutant bytes, mutations applied) of input ``i`` of ``seed``: from those two alone."""
    rng = random.Random(f"{seed}:{i}")
    name, data = corpus[rng.randrange(len(corpus))]
    parsed = [Parsed.parse(d) for _, d in corpus]
    f = Parsed.parse(data).copy()
    applied = []
    if rng.random() < 0.1:
        out = havoc(rng, data)
        return name, out, ["havoc"]
    funcs, weights = zip(*STRUCTURED)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        fn = rng.choices(funcs, weights)[0]
        fn(rng, f, parsed)
        applied.append(fn.__name__[2:])
    out = f.encode()
    if rng.random() < 0.03:
        out = havoc(rng, out)
        applied.append("havoc")
    return name, out, applied


def load_corpus(folder: Path = CORPUS) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.ddc"))]


# ---------------------------------------------------------------------------------------------- the worker
WORKER = r"""
import io, json, os, sys, traceback, warnings
reply = os.fdopen(os.dup(1), "w", buffering=1)
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 1)
import torch
torch.set_num_threads(1)
from diffcodec import errors
from diffcodec.cli import main

def documented():
    out, todo = set(), [errors.DiffcodecError]
    while todo:
        cls = todo.pop()
        out.add(cls.exit_code)
        todo += cls.__subclasses__()
    return sorted(out - {1}) + [130]

DOCUMENTED = documented()
reply.write(json.dumps({"ready": True, "documented": DOCUMENTED}) + "\n")

def peak_reset():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass

def peak_mb():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

for line in sys.stdin:
    job = json.loads(line)
    path, target, workdir = job["path"], job["target"], job["workdir"]
    # decode to stdout: PNG for an image, Y4M for a clip (whichever the reader decides the mutant is)
    argv = {"decode": ["decode", path, "-o", "-", "--device", "cpu", "--quiet"],
            "info": ["info", path, "--json"]}[target]
    argv += job.get("extra", [])
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    saved = sys.stdout, sys.stderr, warnings.showwarning
    sys.stdout, sys.stderr = stdout, stderr
    peak_reset()
    code, tb = None, None
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        tb = traceback.format_exc()
    finally:
        sys.stdout, sys.stderr, warnings.showwarning = saved
    err = stderr.buffer.getvalue().decode("utf-8", "replace")
    result = {"code": code, "stderr": err[-4000:], "traceback": tb, "peak_mb": peak_mb()}
    if code == 0 and target == "decode":
        head = stdout.buffer.getvalue()[:9]
        ok = head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"YUV4MPEG2")
        result["output_bytes"] = len(stdout.buffer.getvalue()) if ok else None
    if code == 0 and target == "info":
        try:
            json.loads(stdout.buffer.getvalue())
            result["output_bytes"] = len(stdout.buffer.getvalue())
        except ValueError:
            result["output_bytes"] = None
    reply.write(json.dumps(result) + "\n")
"""


def classify(result: dict, documented: list[int]) -> str:
    """The outcome of one run: 'ok', 'exit-N' (a documented one-line error) or one of FAILURES."""
    if result.get("traceback"):
        return "traceback"
    code = result["code"]
    lines = [ln for ln in result["stderr"].splitlines() if ln.strip() and not ln.startswith("diffcodec: warning:")]
    if "Traceback (most recent call last)" in result["stderr"] or code == 1:
        return "traceback"
    if code == 0:
        return "ok" if result.get("output_bytes") and not lines else "bad-exit"
    if code in documented and len(lines) == 1 and lines[0].startswith("diffcodec: "):
        return f"exit-{code}"
    return "bad-exit"


class Worker:
    """A worker process running ``script`` (WORKER: one CLI call per job line), killed past a run's timeout or
    the memory cap."""

    def __init__(self, env: dict, memory_mb: float, script: str = WORKER):
        self.env, self.memory_mb, self.script = env, memory_mb, script
        self.proc: subprocess.Popen | None = None
        self.documented: list[int] = []
        self.starts = 0

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", self.script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=self.env, cwd=ROOT, text=True, bufsize=1)
        hello = self._read(120.0, watch_memory=False)
        if not isinstance(hello, dict) or not hello.get("ready"):
            raise RuntimeError(f"the fuzz worker did not start: {hello}")
        self.documented = hello["documented"]
        self.starts += 1

    def rss_mb(self) -> float:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def _read(self, timeout: float, watch_memory: bool = True):
        """The worker's next reply line, or 'hang' / 'memory' / 'crash' (the worker is then killed)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                return "hang"
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.02))
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    self.kill()
                    return "crash"
                return json.loads(line)
            if watch_memory and self.memory_mb and self.rss_mb() > self.memory_mb:
                self.kill()
                return "memory"
            if self.proc.poll() is not None:
                return "crash"

    def run(self, job: dict, timeout: float):
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            return "crash"
        return self._read(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
        self.proc = None


def worker_env(max_pixels: int, max_work: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", DIFFCODEC_MAX_PIXELS=str(max_pixels),
               DIFFCODEC_MAX_WORK=str(max_work), PYTHONWARNINGS="default")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def fuzz(inputs: int, seed: int = 0, *, timeout: float = 20.0, memory_mb: float = 3000.0,
         max_pixels: int = DEFAULT_MAX_PIXELS, max_work: int = DEFAULT_MAX_WORK, targets=TARGETS,
         corpus: list[tuple[str, bytes]] | None = None, save_failures: Path | None = None,
         only: list[int] | None = None, check_corpus: bool = True, progress: bool = False) -> dict:
    """Run ``inputs`` mutants (or the indices ``only``) through every target; returns the report (counts by
    outcome and target, failures with how to replay them, peak memory, time). ``check_corpus``: first run every
    corpus file itself, which must decode cleanly (tests/test_golden.py does that too)."""
    corpus = corpus or load_corpus()
    worker = Worker(worker_env(max_pixels, max_work), memory_mb)
    outcomes: Counter = Counter()
    by_target: dict[str, Counter] = {t: Counter() for t in targets}
    by_mutation: dict[str, Counter] = {}
    failures, peak, slowest = [], 0.0, (0.0, None)
    examples: dict[str, list] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="diffcodec-fuzz-") as tmp:
        worker.start()
        seeds_ok = Counter()
        for name, data in corpus if check_corpus else ():   # the corpus must decode cleanly (and warms models up)
            path = os.path.join(tmp, "seed.ddc")
            Path(path).write_bytes(data)
            for target in targets:
                got = worker.run({"path": path, "target": target, "workdir": tmp}, max(timeout, 60.0))
                kind = got if isinstance(got, str) else classify(got, worker.documented)
                seeds_ok[kind] += 1
                if kind != "ok":
                    failures.append({"input": f"corpus:{name}", "target": target, "outcome": kind,
                                     "detail": got if isinstance(got, str) else got.get("stderr", "")[-500:]})
        indices = only if only is not None else range(inputs)
        for n, i in enumerate(indices):
            name, data, applied = make_input(seed, i, corpus)
            path = os.path.join(tmp, "input.ddc")
            Path(path).write_bytes(data)
            for target in targets:
                start = time.perf_counter()
                got = worker.run({"path": path, "target": target, "workdir": tmp}, timeout)
                took = time.perf_counter() - start
                kind = got if isinstance(got, str) else classify(got, worker.documented)
                if not isinstance(got, str):
                    peak = max(peak, got.get("peak_mb") or 0.0)
                if took > slowest[0]:
                    slowest = (took, f"{seed}:{i}")
                outcomes[kind] += 1
                by_target[target][kind] += 1
                if len(examples.setdefault(f"{target} {kind}", [])) < EXAMPLES:
                    examples[f"{target} {kind}"].append({"input": f"{seed}:{i}", "corpus_file": name,
                                                         "stderr": "" if isinstance(got, str) else
                                                         got.get("stderr", "")[-300:]})
                for m in set(applied):
                    by_mutation.setdefault(m, Counter())[kind] += 1
                if kind in FAILURES:
                    detail = got if isinstance(got, str) else (got.get("traceback") or got.get("stderr", ""))[-2000:]
                    failures.append({"input": f"{seed}:{i}", "corpus_file": name, "mutations": applied,
                                     "target": target, "outcome": kind, "detail": detail})
                    if save_failures is not None:
                        save_failures.mkdir(parents=True, exist_ok=True)
                        (save_failures / f"{seed}-{i}.ddc").write_bytes(data)
                        (save_failures / f"{seed}-{i}-{target}.json").write_text(json.dumps(failures[-1], indent=2))
            if progress and (n + 1) % 100 == 0:
                rate = (n + 1) / (time.perf_counter() - t0)
                print(f"{n + 1} inputs, {rate:.1f}/s, {dict(outcomes)}", file=sys.stderr, flush=True)
        worker.kill()
    elapsed = time.perf_counter() - t0
    tried = len(indices)
    return {"seed": seed, "inputs": tried, "runs": sum(outcomes.values()), "targets": list(targets),
            "outcomes": dict(sorted(outcomes.items())),
            "by_target": {t: dict(sorted(c.items())) for t, c in by_target.items()},
            "by_mutation": {m: dict(sorted(c.items())) for m, c in sorted(by_mutation.items())},
            "corpus": {"files": len(corpus), "outcomes": dict(seeds_ok)},
            "examples": examples, "failures": failures, "failed": sum(outcomes[k] for k in FAILURES) + sum(
                v for k, v in seeds_ok.items() if k != "ok"),
            "peak_rss_mb_per_input": round(peak, 1), "slowest_run_s": round(slowest[0], 3),
            "slowest_input": slowest[1], "elapsed_s": round(elapsed, 1),
            "inputs_per_s": round(tried / elapsed, 2) if elapsed else None, "worker_starts": worker.starts,
            "limits": {"timeout_s": timeout, "memory_mb": memory_mb, "max_pixels": max_pixels, "max_work": max_work},
            "python": sys.version.split()[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--inputs", type=int, default=1000, help="mutants to try (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per run before it counts as a hang")
    ap.add_argument("--memory-mb", type=float, default=3000.0, help="resident memory a run may reach (MB)")
    ap.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="decode limit given to diffcodec")
    ap.add_argument("--max-work", type=int, default=DEFAULT_MAX_WORK, help="decode limit given to diffcodec")
    ap.add_argument("--targets", default=",".join(TARGETS), help="decode,info")
    ap.add_argument("--replay", default=None, metavar="SEED:I[,I...]", help="run these inputs only")
    ap.add_argument("--save-failures", type=Path, default=None, metavar="DIR")
    ap.add_argument("--json-out", type=Path, default=None, metavar="FILE", help="write the report here")
    ap.add_argument("--skip-corpus", action="store_true", help="do not run the corpus files themselves first")
    args = ap.parse_args(argv)
    seed, only = args.seed, None
    if args.replay:
        s, _, idx = args.replay.partition(":")
        seed, only = int(s), [int(x) for x in idx.split(",") if x]
    report = fuzz(args.inputs, seed, timeout=args.timeout, memory_mb=args.memory_mb, max_pixels=args.max_pixels,
                  max_work=args.max_work, targets=tuple(args.targets.split(",")), save_failures=args.save_failures,
                  only=only, check_corpus=not args.skip_corpus, progress=True)
    text = json.dumps(report, indent=2, default=lambda v: None if isinstance(v, float) and math.isnan(v) else str(v))
    if args.json_out:
        args.json_out.write_text(text + "\n")
    short = {k: v for k, v in report.items() if k not in ("failures", "by_mutation")}
    print(json.dumps(short, indent=2))
    for f in report["failures"][:20]:
        print(f"FAILURE {f['input']} {f['target']}: {f['outcome']}: {str(f['detail'])[-300:]}", file=sys.stderr)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
