"""Run one zoo model's Keras parity check in its own process (zoo-size builds use GBs of RAM).

python -m tests.model_zoo.zoo_check MODEL_NAME     # exit 0 when ONNX matches Keras
"""

import sys

from tests.model_zoo.test_build import check_against_keras

if __name__ == "__main__":
    check_against_keras(sys.argv[1])
    print(f"{sys.argv[1]}: ONNX matches Keras")
