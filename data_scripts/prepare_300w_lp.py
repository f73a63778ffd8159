"""Prepare 300W-LP for fa3d: verify, safely extract and check the official zip.

300W-LP: ~61k faces synthesised at large poses by 3DDFA's face profiling from
300-W (AFW, HELEN, IBUG, LFPW, and their horizontally flipped copies *_Flip).
Layout after extraction: 300W_LP/<subset>/<name>.jpg + <name>.mat (`pt2d`
(2, 68), `Pose_Para` (1, 7)), plus 300W_LP/landmarks/<subset>/<name>_pts.mat.
2D landmarks only (fa3d sets z to NaN).

Source:  the 3DDFA project page of Xiangyu Zhu (CASIA, CBSR),
         http://www.cbsr.ia.ac.cn/users/xiangyuzhu/projects/3DDFA/main.htm
         (file 300W-LP.zip; the page links its mirrors).
Licence: for research / non-commercial use only (and the 300-W source images'
         own terms); cite Zhu et al., "Face Alignment Across Large Poses: A 3D
         Solution", CVPR 2016. You download it yourself and accept its terms.

Usage:
    python data_scripts/prepare_300w_lp.py ~/Downloads/300W-LP.zip --out data/300wlp
    # then: fa3d.data.readers.open_dataset("300wlp:data/300wlp/300W_LP")
The archive is only read; --out must be empty (or pass --force).
"""
import sys

from _archive import run  # first: it makes fa3d importable from a plain checkout

from fa3d.data.readers import W300LP

# Known SHA-256 of the official files; None = not known to us (never guessed). Use --sha256 to check yours.
KNOWN_SHA256 = {"300W-LP.zip": None}


def main(argv=None) -> int:
    return run(argv, doc=__doc__, open_fn=W300LP, known_sha256=KNOWN_SHA256)


if __name__ == "__main__":
    sys.exit(main())
