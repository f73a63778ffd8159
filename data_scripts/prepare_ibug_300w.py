"""Prepare iBUG 300-W images + .pts annotations for fa3d (2D, 68 points).

Accepted archives (give one or several):
* the 300-W challenge set: 300w.zip, or its parts 300w.zip.001 300w.zip.002 ...
  (joined automatically) -> 300W/01_Indoor/indoor_XXX.png + .pts and
  300W/02_Outdoor/outdoor_XXX.png + .pts (600 faces);
* the re-annotated training sets from the "Facial point annotations" page:
  afw.zip (337), helen.zip (trainset 2000 / testset 330), lfpw.zip
  (trainset 811 / testset 224), ibug.zip (135) -> <set>/[trainset|testset/]<name>.jpg|png + .pts.
Everything extracted is opened as one fa3d PtsFolder (searched recursively);
.pts coordinates are 1-based and become fa3d's 0-based pixel centres.

Source:  https://ibug.doc.ic.ac.uk/resources/300-W/ and
         https://ibug.doc.ic.ac.uk/resources/facial-point-annotations/ (iBUG, Imperial College London).
Licence: non-commercial research use only (the images keep their original
         owners' terms); cite Sagonas et al., "300 Faces in-the-Wild Challenge", ICCVW 2013 / IMAVIS 2016.

Usage:
    python data_scripts/prepare_ibug_300w.py afw.zip helen.zip lfpw.zip ibug.zip --out data/300w
    # then: fa3d.data.readers.open_dataset("300w:data/300w"), and
    #   fa3d evaluate --run RUN --data 300w:data/300w --split test   prints the 300-W table (common = LFPW
    #   test + HELEN test, challenging = iBUG, full = both; NME by the outer-eye-corner distance, failures
    #   above 10 %, AUC to 8 %) from these folder names
    #   fa3d train --data synthetic:2000+300w:data/300w ...   trains on the training folders' "train" part
    #   (split by photo: fa3d.data.splits.photo_part), never on the test folders (docs/training.md)
The archives are only read; --out must be empty (or pass --force).
"""
import sys

from _archive import run  # first: it makes fa3d importable from a plain checkout

from fa3d.data.readers import PtsFolder

# Known SHA-256 of the official files; None = not known to us (never guessed). Use --sha256 to check yours.
KNOWN_SHA256 = {"300w.zip": None, "afw.zip": None, "helen.zip": None, "lfpw.zip": None, "ibug.zip": None}


def main(argv=None) -> int:
    return run(argv, doc=__doc__, open_fn=PtsFolder, known_sha256=KNOWN_SHA256)


if __name__ == "__main__":
    sys.exit(main())
