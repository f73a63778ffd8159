"""Fetch the Basel Face Model's 68-landmark bases (3DDFA's truncation) onto YOUR machine, checked.

Three text files from the 3DDFA repository (cleardusk/3DDFA, c++/weights/): `u_base.txt`
(the mean, 204 values = 68 x (x, y, z)), `w_shp_base.txt` (204 x 40 shape) and `w_exp_base.txt`
(204 x 10 expression). With them, 300W-LP's 3DMM fits give every face its depth
(`python data_scripts/prepare_300w_lp.py ... --bases DIR`).

Licence: derived from the Basel Face Model (University of Basel), whose terms allow
non-commercial research only. That is why fa3d never ships them: this script downloads them on
your machine after you accept those terms, and checks each file's SHA-256 against the one fa3d
knows (fa3d.data.morphable.BASES_SHA256); a mismatch is refused and what it downloaded is removed.

Usage:
    python data_scripts/fetch_bfm68.py --out data/bfm68
"""
import argparse
import os
import sys
from pathlib import Path

from _archive import download  # first: it makes fa3d importable from a plain checkout

from fa3d.data.morphable import BASES_SHA256, BASES_URL, load_bases
from fa3d.files import atomic_write


def fetch(out: Path, url_base: str = BASES_URL) -> Path:
    downloaded = []
    for name in BASES_SHA256:
        if not (out / name).is_file():  # a file already there is kept, and checked below
            downloaded.append(download(url_base.rstrip("/") + "/" + name, out))
    try:
        load_bases(out, verify=True)
    except ValueError:
        for path in downloaded:  # never leave unverified downloads behind (files you had are kept)
            path.unlink(missing_ok=True)
        raise
    atomic_write(out / "SHA256SUMS", "".join(f"{h}  {n}\n" for n, h in BASES_SHA256.items()), overwrite=True)
    print(f"OK: the 3DMM bases in {out} match 3DDFA's published SHA-256")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="folder for the three files")
    p.add_argument("--url-base", default=os.environ.get("FA3D_BFM68_URL", BASES_URL),
                   help="where the three files are (default: the 3DDFA repository on GitHub)")
    args = p.parse_args(argv)
    try:
        fetch(args.out, args.url_base)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
