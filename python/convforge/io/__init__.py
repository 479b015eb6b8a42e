"""convforge.io: the .safetensors format (and, next, pretrained weights from other libraries).

Untrusted files never execute code: .safetensors holds data only.
"""

from .safetensors import open_safetensors, read_safetensors, write_safetensors

__all__ = ["read_safetensors", "write_safetensors", "open_safetensors"]
