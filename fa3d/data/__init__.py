"""Data: landmark schemes, synthetic 3D faces, real-dataset readers, crops and augmentation."""
from .schemes import (INDICES_68_TO_66, SCHEMES, LandmarkScheme, convert_68_to_66,
                      flip_landmarks, get_scheme)
