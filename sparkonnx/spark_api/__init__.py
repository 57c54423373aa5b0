"""Spark ML Transformers / Estimators, image reading, SQL functions, model shipping and
persistence. Only DataFrame-level Spark APIs (works on Spark Connect)."""
