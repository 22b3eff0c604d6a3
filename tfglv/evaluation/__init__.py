"""Model-independent evaluation: FID, linear probe (image grids: `tfglv.grids`)."""

from tfglv.evaluation.fid import compute_fid
from tfglv.evaluation.fid import extract_features
from tfglv.evaluation.fid import feature_statistics
from tfglv.evaluation.fid import frechet_distance
from tfglv.evaluation.fid import InceptionFeatureExtractor
from tfglv.evaluation.probe import format_probe_table
from tfglv.evaluation.probe import linear_probe
from tfglv.evaluation.probe import PAPER_ACCURACY_PERCENT

__all__ = [
    "compute_fid",
    "extract_features",
    "feature_statistics",
    "frechet_distance",
    "InceptionFeatureExtractor",
    "format_probe_table",
    "linear_probe",
    "PAPER_ACCURACY_PERCENT",
]
