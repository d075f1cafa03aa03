"""The common quality knob and the size target (issue 22 items 1 and 6): -q/--quality 0..100 and --size BYTES for
every method, asked of the codec (Codec.quality_params / size_params), and encode's one-line summary."""

import json

import numpy as np
import pytest
from PIL import Image

from diffcodec import api, metrics
from diffcodec.errors import UsageError
from diffcodec.methods import Codec, available, get_codec

from conftest import synthetic_image


@pytest.mark.parametrize("method", sorted(available()))
def test_every_method_maps_every_quality_and_higher_never_means_less(method):
    codec = get_codec(method)
    rows = codec.quality_points
    assert rows and rows[0][0] == 0 and [r[0] for r in rows] == sorted({r[0] for r in rows})
    assert 0 < codec.quality_ceiling <= 101
    rank = []
    for q in range(101):
        preset, params = codec.quality_params(q)
        assert preset is None or preset in codec.presets
        codec.check_encode_options(params)
        # the rate a quality asks for: a preset's place in the codec's list, or a target bpp
        rank.append(params["bpp"] if "bpp" in params else list(codec.presets).index(preset))
    assert rank == sorted(rank) and rank[0] < rank[-1]
    for bad in (-1, 101, 50.5, "50"):
        with pytest.raises(UsageError, match="0..100"):
            codec.quality_params(bad)


def test_opq_quality_raises_quality_and_size_on_a_photo(photo):
    sizes, psnrs = [], []
    for q in (0, 15, 30, 60, 100):
        data, recon = api.encode_with_reconstruction(photo, method="opq", quality=q)
        sizes.append(len(data))
        psnrs.append(metrics.psnr(photo, recon))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert psnrs == sorted(psnrs) and psnrs[-1] > psnrs[0] + 3
    assert api.info(api.encode(photo, method="opq", quality=50))["model"] == "128-32-32"   # the documented row


@pytest.mark.parametrize("method, extra", [("opq", {}), ("diffae", {"device": "cpu"}),
                                           ("ddcm", {"device": "cpu", "space": "latent", "precision": "fp32"})])
def test_size_target_lands_at_or_under_it(method, extra, photo, one_thread):
    img = photo[:64, :96].copy() if method == "ddcm" else photo
    h, w = img.shape[:2]
    targets = {"opq": (1500, 3000, 9000), "diffae": (160, 300, 600), "ddcm": (150, 400)}[method]
    sizes = []
    for target in targets:
        data = api.encode(img, method=method, max_bytes=target, **extra)
        assert len(data) <= target, (target, len(data))
        sizes.append(len(data))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert api.info(data)["width"] == w and api.info(data)["height"] == h
    with pytest.raises(UsageError, match="below"):
        api.encode(img, method=method, max_bytes=20, **extra)     # under what the method reaches: said, not shipped


def test_rate_requests_are_one_at_a_time():
    img = synthetic_image(24, 32)
    for kwargs, words in [({"quality": 50, "preset": "opq-16-8-8"}, "preset or --quality"),
                          ({"quality": 50, "bpp": 0.5}, "already fix"),
                          ({"max_bytes": 500, "preset": "opq-16-8-8"}, "preset or --size"),
                          ({"max_bytes": 500, "quality": 50}, "not both"),
                          ({"max_bytes": 0}, "positive")]:
        with pytest.raises(UsageError, match=words):
            api.encode(img, method="opq", **kwargs)

    class NoScale(Codec):
        name = "noscale"
        presets = {"only": "the one"}

    with pytest.raises(UsageError, match="no quality scale"):
        NoScale().quality_params(50)
    with pytest.raises(UsageError, match="no rate control"):
        NoScale().size_params(1000, 8, 8, 3)


def test_ddcm_encode_setting_resolves_presets():
    ddcm = get_codec("ddcm")
    fixed = {ddcm.encode_setting(p, {"steps": 3, "atoms": 8}).__repr__() for p in ddcm.presets}
    assert len(fixed) == 1                       # every preset is K = 4096: steps and atoms leave nothing to differ
    free = {ddcm.encode_setting(p, {}).__repr__() for p in ddcm.presets}
    assert len(free) == len(ddcm.presets)
    # no rate named: the default rate (as compress_with_reconstruction); with a preset, the preset's steps/atoms
    assert ddcm.encode_setting(None, {"k": 64}) == {"k": 64, "bpp": 0.3}
    assert ddcm.encode_setting("n20-k4096-m64", {"k": 64}) == {"k": 64, "steps": 20, "atoms": 32}
    assert ddcm.encode_setting("n20-k4096-m1", {"bpp": 0.1, "device": "cpu"}) == {"bpp": 0.1}
    assert ddcm.coded_setting("latent-ddpm", {"n": 50, "k": 4096, "m": 9, "cb": "mshift", "sp": "latent"}) == \
        "n50-k4096-m9 latent"


# ----------------------------------------------------------------------------------------------- the CLI

@pytest.fixture
def png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(synthetic_image(48, 64)).save(path)
    return path


def test_cli_quality_size_summary_and_verbose(png, tmp_path, capsys):
    from diffcodec.cli import main

    out = tmp_path / "q.ddc"
    main(["encode", str(png), "-o", str(out), "-q", "15"])
    line = capsys.readouterr().err.strip()
    size = out.stat().st_size
    # cwebp-like: output size, bpp, PSNR (opq's encoder knows its decoder's output), time; one line
    assert len(line.splitlines()) == 1 and f"{size:,} bytes" in line and "bpp" in line and "PSNR" in line
    assert "opq-32-8-8" in line and line.rstrip(")").split("(")[0].rstrip().endswith(" s")

    main(["encode", str(png), "-o", str(tmp_path / "s.ddc"), "--size", "1k", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["max_bytes"] == 1000 and summary["file_bytes"] <= 1000 and summary["psnr"] > 15

    main(["encode", str(png), "-o", str(tmp_path / "v.ddc"), "-q", "90", "-v"])
    err = capsys.readouterr().err
    assert "-q 90 -> opq-128-32-32" in err and "setting:" in err and "payload" in err
    assert "note: opq reaches the quality scale only up to -q 75" in err

    main(["decode", str(out), "-o", str(tmp_path / "d.png"), "-v"])
    err = capsys.readouterr().err.splitlines()
    assert f"from {size:,} bytes" in err[0] and "opq-32-8-8" in err[0] and any("setting:" in x for x in err[1:])

    main(["encode", str(png), "-o", str(tmp_path / "quiet.ddc"), "--quiet"])
    assert capsys.readouterr().err == ""


def test_cli_size_and_quality_mistakes(png, tmp_path, capsys):
    from diffcodec.cli import main

    for args, words in [(["--size", "352x288"], "--video-size 352x288"), (["--size", "lots"], "not a file size"),
                        (["-q", "50", "-p", "opq-16-8-8"], "not both"), (["-q", "50", "--kbps", "100"], "not both")]:
        with pytest.raises(SystemExit) as e:
            main(["encode", str(png), "-o", str(tmp_path / "x.ddc"), *args])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and words in err and len(err.splitlines()) == 1, err
    with pytest.raises(SystemExit) as e:        # -q is the quality now: it takes a number
        main(["encode", str(png), "-o", str(tmp_path / "x.ddc"), "-q"])
    assert e.value.code == 2
    main(["encode", str(png), "-o", str(tmp_path / "ok.ddc"), "--quiet"])
    for command in (["decode", str(tmp_path / "ok.ddc"), "-o", str(tmp_path / "x.png")], ["demo", "-o", str(tmp_path)]):
        with pytest.raises(SystemExit) as e:    # ... and nowhere else: quiet is --quiet only
            main([*command, "-q"])
        assert e.value.code == 2
    capsys.readouterr()
    assert not (tmp_path / "x.ddc").exists()


def test_cli_methods_lists_the_quality_mapping(capsys):
    from diffcodec.cli import main

    main(["methods"])
    text = capsys.readouterr().out
    assert "-q/--quality     0-12 opq-16-8-8, 13-19 opq-32-8-8, 20-38 opq-64-16-16, 39-100 opq-128-32-32" in text
    main(["methods", "--json"])
    table = json.loads(capsys.readouterr().out)
    assert table["ddcm"]["quality"][0] == {"from": 0, "preset": None, "options": {"bpp": 0.029}}
    assert np.all(np.diff([r["options"]["bpp"] for r in table["ddcm"]["quality"]]) > 0)
