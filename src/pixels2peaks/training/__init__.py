"""Training of the terrain prior: dataset builder (`dataset`), tile loader (`data`), config, loop (`train`)."""
