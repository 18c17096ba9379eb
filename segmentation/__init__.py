"""Customer segmentation with sentence embeddings: the library behind the DVC stages.

- ``data``: data-set files, reading and checking a customer table, fetching it, drafting a file;
- ``text``: writing each customer as a short text;
- ``embedding``: encoders (torch, ONNX), the Ray engine, resumable chunks;
- ``model``: the segment model (ECOD outliers, KMeans, one sampling rule, assignment);
- ``evaluation``: validity, stability, the elbow study, the maps and the surrogate;
- ``baselines``: the article's tabular KMeans, K-Prototypes and MCA, and the three-way comparison;
- ``reporting``: the segment profile and the reports;
- ``config`` (params and file layout) and ``artifacts`` (atomic writes, rounded metrics).
"""
