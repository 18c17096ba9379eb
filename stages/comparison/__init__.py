"""The article's two other methods and the three-way comparison.

Method 1 (``tabular``: KMeans on the encoded columns) and Method 2 (``kprototypes``, with its cost
curve ``kprototypes_cost``, the compiled ``kprototypes_engine`` and the MCA picture ``mca``)
segment the same customers as the embedding method; ``compare`` scores all three on the customers
they all keep. Their params are the ``comparison`` section of params.yaml.
"""
