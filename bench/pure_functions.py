"""No Lambda functions: what `python -m localsfn --functions pure_functions:FUNCTIONS` serves for benchmarks of pure states."""

FUNCTIONS: dict = {}
