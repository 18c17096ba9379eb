"""The article's two other methods (tabular KMeans, K-Prototypes with MCA) and the comparison."""
