"""Prepare AFLW2000-3D for fa3d: verify, safely extract and check the official zip.

AFLW2000-3D: the first 2,000 images of AFLW (450x450 crops) with 68 3D landmarks
fitted by 3DDFA (`pt3d_68`, (3, 68)) and the pose (`Pose_Para`), one .mat per image.

Source:  the 3DDFA project page of Xiangyu Zhu (CASIA, CBSR),
         http://www.cbsr.ia.ac.cn/users/xiangyuzhu/projects/3DDFA/main.htm
         (file AFLW2000-3D.zip).
Licence: for research / non-commercial use only (see the project page and the
         AFLW terms); cite Zhu et al., "Face Alignment Across Large Poses: A 3D
         Solution", CVPR 2016. You download it yourself and accept its terms.

Usage:
    python data_scripts/prepare_aflw2000_3d.py ~/Downloads/AFLW2000-3D.zip --out data/aflw2000
    # then: fa3d.data.readers.open_dataset("aflw2000:data/aflw2000/AFLW2000")
The archive is only read; --out must be empty (or pass --force).
"""
import sys

from _archive import run  # first: it makes fa3d importable from a plain checkout

from fa3d.data.readers import AFLW2000_3D

URL = "http://www.cbsr.ia.ac.cn/users/xiangyuzhu/projects/3DDFA/Database/AFLW2000-3D.zip"
# Known SHA-256 of the official files; None = not known to us (never guessed). Use --sha256 to check yours.
KNOWN_SHA256 = {"AFLW2000-3D.zip": None}


def main(argv=None) -> int:
    return run(argv, doc=__doc__, open_fn=AFLW2000_3D, known_sha256=KNOWN_SHA256, default_url=URL)


if __name__ == "__main__":
    sys.exit(main())
