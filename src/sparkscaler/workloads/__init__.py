"""Real PySpark jobs and the machinery to submit them to the local cluster."""
