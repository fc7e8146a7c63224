"""The model side's parts: the backbone registry and exported-model formats."""
