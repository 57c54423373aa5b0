"""Executor-side engine: ONNX model artifacts, providers, session cache, batched runs and
Arrow <-> tensor conversion. Imports neither pyspark nor tensorflow."""
