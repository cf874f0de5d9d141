"""Model layer: configs, the five-network container, typed keypoints/motion, safetensors checkpoints."""
from .container import NETWORKS, ModelError, TPSMMNetworks

__all__ = ["NETWORKS", "TPSMMNetworks", "ModelError"]
