"""convforge.io: pretrained weights from other libraries, and the .safetensors format.

    from convforge import io, models
    model = models.vgg16(preprocess="torch")
    io.load_torchvision(model, "vgg16.safetensors")     # or a state dict, .npz, .pth
    io.load_keras_h5(model, "vgg16_weights.h5")         # needs h5py (convforge[keras])

Both loaders pair the model's Conv2D, Dense and BatchNormalization layers with the source's,
convert the layouts (torch OIHW conv weights as is, Linear weights transposed; Keras HWIO
kernels to OIHW, the first Dense after a channels-last Flatten permuted from H, W, C to C, H, W
rows) and check every name and shape before changing anything: a mismatch raises ValueError
listing what is missing, unexpected or of the wrong shape, and the model stays as it was.
Untrusted files never execute code: .safetensors, .npz (allow_pickle=False) and .h5 hold data
only, and a .pth (a pickle) is opened only by torch.load(weights_only=True).
"""

from .keras import load_keras_h5
from .safetensors import open_safetensors, read_safetensors, write_safetensors
from .torchvision import load_torchvision, read_state_dict

__all__ = ["load_torchvision", "load_keras_h5", "read_state_dict", "read_safetensors",
           "write_safetensors", "open_safetensors"]
