"""The data side: finding videos, decoding clips, transforms, datasets, loaders, sources and shards.

Nothing here imports the model side.
"""
