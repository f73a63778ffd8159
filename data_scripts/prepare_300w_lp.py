"""Prepare 300W-LP for fa3d: verify, safely extract and check the official zip; with --bases, add depth.

300W-LP: ~61k faces synthesised at large poses by 3DDFA's face profiling from
300-W (AFW, HELEN, IBUG, LFPW, and their horizontally flipped copies *_Flip).
Layout after extraction: 300W_LP/<subset>/<name>.jpg + <name>.mat (`pt2d`
(2, 68), `Pose_Para` (1, 7), the 3DMM fit `Shape_Para`, `Exp_Para`), plus
300W_LP/landmarks/<subset>/<name>_pts.mat.

Depth: the files hold no z, but their 3DMM fits give it. With `--bases DIR` (the BFM's
68-landmark bases: `python data_scripts/fetch_bfm68.py --out data/bfm68`) this script writes
300W_LP/landmarks_3d/<subset>/<name>.csv (68 rows x,y,z in fa3d's pixels) for every face, once;
fa3d's reader then gives (x, y, z) without the bases. Faces whose fit disagrees with their own
`pt2d` or does not fit the image are left out and listed with the reason in
300W_LP/landmarks_3d/skipped.tsv (the reader says how many it skips).

Source:  the 3DDFA project page of Xiangyu Zhu (CASIA, CBSR),
         http://www.cbsr.ia.ac.cn/users/xiangyuzhu/projects/3DDFA/main.htm
         (file 300W-LP.zip; the page links its mirrors).
Licence: for research / non-commercial use only (and the 300-W source images'
         own terms); cite Zhu et al., "Face Alignment Across Large Poses: A 3D
         Solution", CVPR 2016. You download it yourself and accept its terms.

Usage:
    python data_scripts/prepare_300w_lp.py ~/Downloads/300W-LP.zip --out data/300wlp --bases data/bfm68
    # then: fa3d train --data 300wlp:data/300wlp/300W_LP ...
The archive is only read; --out must be empty (or pass --force).
"""
import sys

from _archive import run, shown_path  # first: it makes fa3d importable from a plain checkout

from fa3d.data.morphable import load_bases
from fa3d.data.readers import W300LP
from fa3d.data.writers import prepare_300wlp_depth

# Known SHA-256 of the official files; None = not known to us (never guessed). Use --sha256 to check yours.
KNOWN_SHA256 = {"300W-LP.zip": None}


def _options(parser) -> None:
    parser.add_argument("--bases", default=None, help="folder of the 3DMM bases: write 3D landmarks for every face")
    parser.add_argument("--no-verify-bases", action="store_true",
                        help="accept bases whose SHA-256 is not 3DDFA's (your own, or the tests' stand-ins)")


def _check_bases(args):
    """The bases, read and checked before the long extraction (None without --bases)."""
    return None if args.bases is None else load_bases(args.bases, verify=not args.no_verify_bases)


def _add_depth(args, root, ds, bases) -> None:
    if bases is None:
        print("2D only (pass --bases DIR to add depth from the 3DMM fits)")
        return
    written, skipped = prepare_300wlp_depth(root, bases)
    print(f"3D landmarks for {written} faces in {shown_path(root / 'landmarks_3d')}; {len(skipped)} skipped"
          + (f" (reasons in {root / 'landmarks_3d' / 'skipped.tsv'}, e.g. {skipped[0][0]}: {skipped[0][1]})"
             if skipped else ""))


def main(argv=None) -> int:
    return run(argv, doc=__doc__, open_fn=W300LP, known_sha256=KNOWN_SHA256, configure=_options,
               before=_check_bases, after=_add_depth)


if __name__ == "__main__":
    sys.exit(main())
