"""The three subnetworks (detection, regression, Z), the cascade that chains them, and the presets."""
from .cascade import SUBNETS, Cascade, normalize_images, num_parameters
from .detection import (DetectionConfig, DetectionNet, PretrainedWeightsUnavailable,
                        detection_loss)
from .presets import PRESETS, Preset, get_preset, override_preset
from .regression import RegressionConfig, RegressionNet, regression_loss
from .zregressor import ZConfig, ZRegressor, z_loss
