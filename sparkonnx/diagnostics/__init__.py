"""`sparkonnx doctor`: what the driver and every executor of a Spark session can run."""

from sparkonnx.diagnostics.doctor import doctor
from sparkonnx.diagnostics.report import DoctorReport

__all__ = ["DoctorReport", "doctor"]
