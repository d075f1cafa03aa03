"""The standing fuzz harness (benchmarks/fuzz.py): a short fixed-seed run in the normal suite (every outcome a
clean decode or a documented one-line error, no hang, nothing over the memory cap), and checks that the harness
itself notices what it is there to notice. The long run: `python benchmarks/fuzz.py --inputs 100000 --seed 0`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from diffcodec import container
from diffcodec.errors import DiffcodecError

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("fuzz", ROOT / "benchmarks" / "fuzz.py")
fuzz = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fuzz)


@pytest.mark.slow          # one worker process running the networks on the mutants that reach them
def test_a_short_fixed_seed_run_has_no_failure():
    report = fuzz.fuzz(inputs=40, seed=0, timeout=20.0, memory_mb=3000.0, check_corpus=False)
    assert report["failed"] == 0, report["failures"]
    outcomes = report["outcomes"]
    assert sum(outcomes.values()) == 80 and outcomes.get("ok", 0) > 0
    assert len([k for k in outcomes if k.startswith("exit-")]) >= 2, outcomes      # the mutants reach many checks
    assert report["worker_starts"] == 1


def test_inputs_are_replayable_from_seed_and_index():
    corpus = fuzz.load_corpus()
    assert fuzz.make_input(3, 17, corpus) == fuzz.make_input(3, 17, corpus)
    assert len({fuzz.make_input(3, i, corpus)[1] for i in range(50)}) > 45


def test_structure_aware_mutants_keep_their_framing_valid():
    """Payload mutations fix lengths and CRCs, so the reader accepts the frame and the codec sees the mutant."""
    corpus = fuzz.load_corpus()
    reached = 0
    for i in range(300):
        name, data, applied = fuzz.make_input(0, i, corpus)
        if applied != ["payload"]:
            continue
        try:
            container.read_container(data)
            reached += 1
        except DiffcodecError as e:
            # the only framing-level refusal a payload mutation may cause: a payload chunk that became empty
            # or an emptied clip frame; never a CRC or length error
            assert "CRC" not in str(e) and "declares" not in str(e), (name, e)
    assert reached >= 20


def test_the_classifier_flags_what_is_not_a_clean_outcome():
    documented = [2, 3, 4, 5, 6, 7, 130]
    one = "diffcodec: error: corrupt file: CRC mismatch in chunk 'D' at offset 39\n"
    assert fuzz.classify({"code": 3, "stderr": one}, documented) == "exit-3"
    assert fuzz.classify({"code": 3, "stderr": "diffcodec: warning: x\n" + one}, documented) == "exit-3"
    assert fuzz.classify({"code": 3, "stderr": one + "more\n"}, documented) == "bad-exit"
    assert fuzz.classify({"code": 9, "stderr": one}, documented) == "bad-exit"
    assert fuzz.classify({"code": 1, "stderr": "Traceback (most recent call last):\n..."}, documented) == "traceback"
    assert fuzz.classify({"code": None, "stderr": "", "traceback": "Traceback ..."}, documented) == "traceback"
    assert fuzz.classify({"code": 0, "stderr": "", "output_bytes": None}, documented) == "bad-exit"
    assert fuzz.classify({"code": 0, "stderr": "", "output_bytes": 100}, documented) == "ok"


_FAKE_WORKER = r"""
import json, sys, time
print(json.dumps({"ready": True, "documented": [2, 3]}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    if job["do"] == "hang":
        time.sleep(60)
    elif job["do"] == "grow":
        hog = bytearray(300 << 20)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        time.sleep(60)
    elif job["do"] == "die":
        sys.exit(9)
    print(json.dumps({"code": 0, "stderr": "", "output_bytes": 1}), flush=True)
"""


def test_the_worker_is_killed_on_a_hang_over_the_memory_cap_or_dead_and_restarted():
    worker = fuzz.Worker({}, memory_mb=200.0, script=_FAKE_WORKER)
    try:
        assert worker.run({"do": "hang"}, timeout=0.5) == "hang" and worker.proc is None
        assert worker.run({"do": "grow"}, timeout=30) == "memory" and worker.proc is None
        assert worker.run({"do": "die"}, timeout=30) == "crash"
        assert fuzz.classify(worker.run({"do": "ok"}, timeout=30), worker.documented) == "ok"
        assert worker.starts == 4
    finally:
        worker.kill()
