"""sparkdl's quick user guide, block 16: a Keras model on tensor columns with KerasTransformer.

python examples/sparkdl_guide/block16_keras_transformer.py
"""

# Diff from the guide (GUIDE.md); the only edits (Keras 3's model.save wants a .keras or .h5
# name; the guide's /tmp is this run's folder):
# - from sparkdl import KerasTransformer
# + from sparkonnx import KerasTransformer
# - model_path = "/tmp/simple-binary-classification"
# + model_path = f"{tmp}/simple-binary-classification.keras"
import guide_setup

spark = guide_setup.spark_session()
sqlContext = guide_setup.sql_context(spark)
tmp = guide_setup.tmp_dir()  # the guide's /tmp

# fmt: off
# ---- guide block 16
from sparkonnx import KerasTransformer
from keras.models import Sequential
from keras.layers import Dense
import numpy as np

# Generate random input data
num_features = 10
num_examples = 100
input_data = [{"features" : np.random.randn(num_features).tolist()} for i in range(num_examples)]
input_df = sqlContext.createDataFrame(input_data)

# Create and save a single-hidden-layer Keras model for binary classification
# NOTE: In a typical workflow, we'd train the model before exporting it to disk,
# but we skip that step here for brevity
model = Sequential()
model.add(Dense(units=20, input_shape=[num_features], activation='relu'))
model.add(Dense(units=1, activation='sigmoid'))
model_path = f"{tmp}/simple-binary-classification.keras"
model.save(model_path)

# Create transformer and apply it to our input data
transformer = KerasTransformer(inputCol="features", outputCol="predictions", modelFile=model_path)
final_df = transformer.transform(input_df)
# fmt: on
