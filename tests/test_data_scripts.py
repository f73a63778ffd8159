"""data_scripts/: safe extraction, checksums and end-to-end preparation of archives built here."""
import hashlib
import importlib
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from fa3d.data.writers import write_300wlp_mat, write_aflw2000_3d_mat, write_image, write_pts

SCRIPTS = Path(__file__).resolve().parents[1] / "data_scripts"


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(SCRIPTS))
    try:
        yield {name: importlib.import_module(name) for name in
               ("_archive", "prepare_aflw2000_3d", "prepare_300w_lp", "prepare_ibug_300w")}
    finally:
        sys.path.remove(str(SCRIPTS))


def _img(seed):
    return torch.randint(0, 256, (3, 20, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _lm(n, d, seed):
    return np.random.default_rng(seed).uniform(0, 20, (n, d)).astype(np.float32)


def _zip_dir(folder: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(folder.parent).as_posix())
    return zip_path


def _aflw_zip(tmp_path, n=3) -> Path:
    src = tmp_path / "src" / "AFLW2000"
    for i in range(n):
        write_image(src / f"image{i:05d}.jpg", _img(i))
        write_aflw2000_3d_mat(src / f"image{i:05d}.mat", _lm(68, 3, i), (10.0 * i, 0.0, 0.0))
    return _zip_dir(src, tmp_path / "AFLW2000-3D.zip")


def _tar_with(tmp_path, members) -> Path:
    """members: (name, kind, payload) with kind "file" (bytes) or "sym"/"hard" (link target)."""
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = payload
                tar.addfile(info)
    return path


# ----------------------------------------------------------------------------- safe extraction

@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/tmp/abs_evil.txt", "C:/evil.txt",
                                  "..\\evil.txt"])
def test_zip_with_escaping_names_is_refused(tmp_path, scripts, name):
    ar = scripts["_archive"]
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr(zipfile.ZipInfo(name), b"evil")
    assert name in [i.filename for i in zipfile.ZipFile(z).infolist()] or "\\" in name
    out = tmp_path / "deep" / "out"
    with pytest.raises(ar.UnsafeArchiveError, match="evil.zip"):
        ar.safe_extract(z, out)
    assert not out.exists()  # checked before anything is written
    assert not list(tmp_path.rglob("*evil.txt"))


@pytest.mark.parametrize("members", [
    [("link", "sym", "../../outside")],
    [("d/link", "sym", "../..")],
    [("link", "sym", "/etc")],
    [("hard", "hard", "../outside")],
    # Each link alone stays inside, but b/.. through the link b -> . leaves the folder.
    [("b", "sym", "."), ("a", "sym", "b/..")],
    # A file written through a link.
    [("l", "sym", "sub"), ("l/x.txt", "file", b"x")],
])
def test_tar_with_escaping_links_is_refused(tmp_path, scripts, members):
    ar = scripts["_archive"]
    tar = _tar_with(tmp_path, [("ok.txt", "file", b"fine")] + members)
    out = tmp_path / "deep" / "out"
    with pytest.raises(ar.UnsafeArchiveError, match="evil.tar"):
        ar.safe_extract(tar, out)
    assert not out.exists()


def test_tar_with_inside_symlink_extracts(tmp_path, scripts):
    tar = _tar_with(tmp_path, [("d/f.txt", "file", b"hi"), ("d/link", "sym", "f.txt")])
    out = scripts["_archive"].safe_extract(tar, tmp_path / "out")
    assert (out / "d" / "link").read_bytes() == b"hi"


def test_refuses_non_empty_target_unless_force(tmp_path, scripts):
    ar = scripts["_archive"]
    z = _aflw_zip(tmp_path, n=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("user file")
    with pytest.raises(FileExistsError, match="not empty"):
        ar.safe_extract(z, out)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    ar.safe_extract(z, out, force=True)
    assert (out / "mine.txt").read_text() == "user file" and (out / "AFLW2000").is_dir()


# ----------------------------------------------------------------------------- end to end

def _fingerprint(path: Path):
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_prepare_aflw2000_end_to_end(tmp_path, scripts, capsys):
    z = _aflw_zip(tmp_path, n=3)
    before = _fingerprint(z)
    sha = hashlib.sha256(z.read_bytes()).hexdigest()
    out = tmp_path / "data" / "aflw"
    assert scripts["prepare_aflw2000_3d"].main([str(z), "--out", str(out), "--sha256", sha.upper()]) == 0
    stdout = capsys.readouterr().out
    assert "(verified)" in stdout and "OK: 3 faces" in stdout and "AFLW2000" in stdout
    assert len(list((out / "AFLW2000").glob("*.mat"))) == 3
    assert _fingerprint(z) == before  # the user's archive is untouched
    # A second run into the same (now non-empty) folder is refused.
    assert scripts["prepare_aflw2000_3d"].main([str(z), "--out", str(out)]) == 1
    assert "not empty" in capsys.readouterr().err


def test_sha256_mismatch_is_refused(tmp_path, scripts, capsys):
    z = _aflw_zip(tmp_path, n=1)
    before = _fingerprint(z)
    out = tmp_path / "out"
    assert scripts["prepare_aflw2000_3d"].main([str(z), "--out", str(out), "--sha256", "0" * 64]) == 1
    err = capsys.readouterr().err
    assert "SHA-256 mismatch" in err and "AFLW2000-3D.zip" in err
    assert not out.exists() and _fingerprint(z) == before


def test_prepare_reports_bad_dataset(tmp_path, scripts, capsys):
    src = tmp_path / "src" / "AFLW2000"
    write_image(src / "image00001.jpg", _img(0))
    write_image(src / "image00002.jpg", _img(1))
    write_aflw2000_3d_mat(src / "image00001.mat", _lm(68, 3, 0))
    z = _zip_dir(src, tmp_path / "a.zip")
    assert scripts["prepare_aflw2000_3d"].main([str(z), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "image00002" in err and "mismatched" in err


def test_prepare_300w_lp_tar_gz(tmp_path, scripts, capsys):
    src = tmp_path / "src" / "300W_LP"
    for subset in ("AFW", "IBUG_Flip"):
        write_image(src / subset / "x_1_0.jpg", _img(0))
        write_300wlp_mat(src / subset / "x_1_0.mat", _lm(68, 2, 0), (0.0, 0.0, 0.0))
    (src / "Code").mkdir()
    (src / "Code" / "readme.m").write_text("% code")
    tgz = tmp_path / "300W-LP.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(src, arcname="300W_LP")
    assert scripts["prepare_300w_lp"].main([str(tgz), "--out", str(tmp_path / "out")]) == 0
    assert "OK: 2 faces" in capsys.readouterr().out


def test_prepare_ibug_split_archive(tmp_path, scripts, capsys):
    src = tmp_path / "src" / "300W"
    for i, sub in enumerate(("01_Indoor", "02_Outdoor")):
        write_image(src / sub / f"face_{i:03d}.png", _img(i))
        write_pts(src / sub / f"face_{i:03d}.pts", _lm(68, 2, i))
    data = _zip_dir(src, tmp_path / "full.zip").read_bytes()
    parts = [tmp_path / "300w.zip.001", tmp_path / "300w.zip.002"]
    parts[0].write_bytes(data[:100])
    parts[1].write_bytes(data[100:])
    out = tmp_path / "out"
    assert scripts["prepare_ibug_300w"].main([str(parts[1]), str(parts[0]), "--out", str(out)]) == 0
    assert "OK: 2 faces" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["300w.zip.001", "300w.zip.002", "full.zip", "out", "src"]


def test_a_known_checksum_is_enforced_without_sha256_on_the_command_line(tmp_path, scripts, monkeypatch, capsys):
    """No archive's checksum is published (KNOWN_SHA256 holds None for each, nothing invented); where one
    is filled in, a wrong archive is refused and the right one is reported as verified."""
    prepare = scripts["prepare_aflw2000_3d"]
    assert set(prepare.KNOWN_SHA256) == {"AFLW2000-3D.zip"}
    z = _aflw_zip(tmp_path, n=1)
    monkeypatch.setitem(prepare.KNOWN_SHA256, "AFLW2000-3D.zip", "0" * 64)
    assert prepare.main([str(z), "--out", str(tmp_path / "refused")]) == 1
    assert "SHA-256 mismatch" in capsys.readouterr().err and not (tmp_path / "refused").exists()
    monkeypatch.setitem(prepare.KNOWN_SHA256, "AFLW2000-3D.zip", hashlib.sha256(z.read_bytes()).hexdigest())
    assert prepare.main([str(z), "--out", str(tmp_path / "ok")]) == 0
    assert "(verified)" in capsys.readouterr().out


def test_scripts_help_runs_as_a_command():
    r = subprocess.run([sys.executable, str(SCRIPTS / "prepare_aflw2000_3d.py"), "--help"],
                       capture_output=True, text=True, timeout=120, cwd=SCRIPTS.parent)
    assert r.returncode == 0, r.stderr
    assert "3DDFA" in r.stdout and "non-commercial" in r.stdout and "--sha256" in r.stdout
