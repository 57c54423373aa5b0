"""Keras training on Spark: the estimators (`keras_estimator`, `keras_image_estimator`), the
job that trains on one executor (`job`), and gathering the training data (`data`)."""
