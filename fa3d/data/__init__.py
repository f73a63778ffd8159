"""Data: where fa3d's faces come from and how they are shaped into training samples.

The item that every dataset returns and the landmark box (``item``), landmark schemes
(``schemes``), the one head-pose convention (``pose``), procedurally rendered 3D faces
(``synthetic``), 3D landmarks from 3DMM fits (``morphable``), the real datasets' readers and torch
Datasets (``readers``), writers of the same file formats (``writers``), stand-ins for the public
datasets (``standins``), which faces train, validate and test (``splits``), and crops and
augmentation (``transforms``).
"""
from .item import FaceItem, face_item, landmark_box
from .morphable import MorphableBases, landmarks_from_3dmm, load_bases
from .pose import pose_from_3ddfa, pose_from_rotation, pose_to_3ddfa, rotation_matrix
from .readers import (AFLW2000_3D, W300LP, DatasetFormatError, PtsFolder, ThreeDFAW, open_dataset,
                      parse_spec, read_3dfaw_landmarks, read_300wlp_landmarks, read_aflw2000_3d,
                      read_image, read_landmarks_csv, read_pts)
from .schemes import (INDICES_68_TO_66, SCHEMES, LandmarkScheme, convert_68_to_66, flip_landmarks,
                      get_scheme)
from .synthetic import SyntheticFaceParams, SyntheticFaces, render_face, sample_face_params
from .transforms import (Augment3D, AugmentConfig, CenterCrop3D, crop_sample, face_crop_matrix,
                         unwarp_landmarks, warp_image, warp_landmarks, warp_sample)
from .writers import (export_3dfaw_layout, write_3dfaw_landmarks, write_300wlp_mat, write_aflw2000_3d_mat,
                      write_image, write_landmarks_csv, write_pts)
