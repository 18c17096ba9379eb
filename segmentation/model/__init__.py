"""The segment model: ECOD outlier scores, KMeans segments, the one sampling rule and assignment."""
