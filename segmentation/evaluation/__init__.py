"""How far the segments can be trusted: validity, stability, the elbow study, maps, surrogate."""
