"""Model layer: configs, the five-network container, typed keypoints/motion, safetensors checkpoints."""
from .container import NETWORKS, TPSMM, ModelError

__all__ = ["NETWORKS", "TPSMM", "ModelError"]
