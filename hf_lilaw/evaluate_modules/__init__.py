"""`evaluate` modules shipped inside the package, loaded by file path (no Hub access): see
`hf_lilaw.metrics.load_classification_metric`. Nothing here is imported by hf_lilaw itself."""

__all__: list[str] = []
