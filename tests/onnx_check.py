#!/usr/bin/env python3
"""Check an ONNX backbone written by edgecl with the ONNX project's own tools.

    python3 tests/onnx_check.py MODEL.onnx INPUT.f32 EXPECTED.f32 WIDTH [TOLERANCE]

INPUT.f32 and EXPECTED.f32 are raw little-endian float32 arrays (samples x WIDTH, and
samples x features). The model must pass onnx.checker (full check, with shape
inference) and onnxruntime must give the expected features within TOLERANCE max absolute
error (default 1e-5). Exits 0 when both hold, 1 otherwise, 2 when onnx/onnxruntime/numpy are missing.
`tests/onnx_runtime.rs` runs it with the interpreter named by EDGECL_PYTHON (default
python3).
"""
import sys

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:
    print(f"onnx_check.py: {e}; install numpy, onnx and onnxruntime", file=sys.stderr)
    sys.exit(2)


def main():
    path, input_path, expected_path, width = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    tolerance = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-5
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    x = np.fromfile(input_path, dtype="<f4").reshape(-1, width)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (features,) = session.run(None, {session.get_inputs()[0].name: x})
    expected = np.fromfile(expected_path, dtype="<f4").reshape(features.shape)
    err = float(np.max(np.abs(features - expected)))
    print(f"onnx {onnx.__version__} checker: ok; onnxruntime {ort.__version__}: {x.shape[0]} samples, "
          f"max abs error {err:.3g} (tolerance {tolerance:.3g})")
    sys.exit(0 if err <= tolerance else 1)


if __name__ == "__main__":
    main()
