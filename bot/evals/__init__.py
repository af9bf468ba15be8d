"""Answer-level evaluation through the real pipeline (``deptbot eval --qa``)."""
