"""The TensorFlow runtime of one trial: seeds, precision, determinism, and the accelerator seen."""

from __future__ import annotations

from ..config import TrainingConfig
from ..errors import ConfigError, TransientError

# TF 2.21's GPU kernels start at sm_60 and the locked cuDNN 9.10 at 5.0, so 6.0
# (P100) is the floor; docs/kubernetes.md "Supported GPUs" lists the types.
MIN_COMPUTE_CAPABILITY = (6, 0)


def configure_runtime(training: TrainingConfig, seed: int) -> str:
    """Seed everything, set precision (`training.mixed_precision`), and return a description of the accelerator seen."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    mp = training.mixed_precision
    mixed = mp == "on" or (mp == "auto" and bool(gpus))
    # Set both ways: a process that runs several trials must not inherit the last one's policy.
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        cc = tuple(details.get("compute_capability") or MIN_COMPUTE_CAPABILITY)
        if cc < MIN_COMPUTE_CAPABILITY:  # a permanent mismatch: fail the index, do not retry it
            raise ConfigError(f"GPU {details.get('device_name')} has compute capability {cc[0]}.{cc[1]}; this image "
                              f"needs {MIN_COMPUTE_CAPABILITY[0]}.{MIN_COMPUTE_CAPABILITY[1]} or newer (docs/kubernetes.md, "
                              "Supported GPUs): pick another GPU type")
        return f"GPU x{len(gpus)}: {details.get('device_name', gpus[0].name)}"
    return "CPU"


def runtime_versions() -> dict:
    """The TensorFlow version and the first GPU's model (None on CPU), for the result."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    model = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name) if gpus else None
    return {"tensorflow_version": tf.__version__, "gpu_model": model}


def require_gpu(accelerator: str) -> None:
    """Exit 75 (retried) when a GPU was requested but TensorFlow sees none, before any data is loaded."""
    if accelerator != "CPU":
        return
    import tensorflow as tf

    build = "" if tf.test.is_built_with_cuda() else ", and this TensorFlow is built without CUDA (a CPU image)"
    raise TransientError(
        f"the pod requests a GPU (SAMPLESIZE_EXPECT_GPU=1) but TensorFlow {tf.__version__} sees none{build}. "
        f"Check: the image is the GPU build (TF_EXTRA=gpu); LD_LIBRARY_PATH holds /usr/local/nvidia/lib64, where "
        f"GKE mounts the driver (the samplesize image sets it); the node's NVIDIA driver is installed (GKE Standard: "
        f"a node pool created with gpu-driver-version=default or latest, or the driver installer DaemonSet); "
        f"`nvidia-smi` works in the pod. Nothing was trained; the index is retried"
    )
