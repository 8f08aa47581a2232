"""sparkscaler: a deadline-aware autoscaler for Apache Spark standalone clusters."""

__version__ = "0.1.0"
