"""The three subnetworks (detection, regression, Z), the cascade that chains them, the presets, and the
training stages with their losses."""
from .cascade import SUBNETS, Cascade, normalize_images, num_parameters
from .detection import DetectionConfig, DetectionNet, PretrainedWeightsUnavailable
from .losses import (STAGE_SUBNETS, STAGES, StageLoss, check_stages, detection_loss, regression_loss,
                     z_loss)
from .presets import PRESETS, Preset, get_preset, override_preset
from .regression import RegressionConfig, RegressionNet
from .zregressor import ZConfig, ZRegressor
