"""Named image models built from keras.applications with preprocessing fused in."""
