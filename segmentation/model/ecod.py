"""ECOD outlier scores against a fixed reference matrix, for any number of rows in any batches.

pyod's ``ECOD.decision_function`` concatenates the training matrix with the rows to score, so its
memory grows with both and a row's score depends on the other rows of its batch. Here the
reference is summarised once (each column sorted, the sign of each column's skewness) and a row
is scored as if it alone joined the reference: in each column its left tail probability is
(count of reference values <= x, + 1) / (n + 1), its right one likewise with >=, and pyod's
combination follows (per column the largest of -log left, -log right and the skewness-corrected
one, summed over the columns). Rows are independent, so a matrix can be scored block by block.

The reference rows scored in place (each counted once, as pyod's ``fit`` counts them) give pyod's
``decision_scores_`` exactly, and the threshold is pyod's ``threshold_``: the (1 - contamination)
percentile of those scores.
"""

from __future__ import annotations

import numpy as np

# Rows scored at once: the per-block arrays are BLOCK_ROWS x columns float64 (12 MB at 384 columns).
BLOCK_ROWS = 4096
# Reference columns summarised at once, so sorting and skewness hold a slice, not a copy, of it.
COLUMN_BLOCK = 32


class ECODReference:
    """ECOD fitted on ``reference``: ``scores`` for new rows, ``threshold`` from the reference."""

    def __init__(self, reference: np.ndarray, contamination: float):
        # scipy.stats takes most of a second to import; a loaded model scores without it
        from scipy.stats import skew

        rows, columns = reference.shape
        if rows < 2:
            raise ValueError(f"ECOD needs at least 2 reference rows, got {rows}")
        self.rows = rows
        self.sorted_columns = np.empty((columns, rows), dtype=reference.dtype)
        self.skew_signs = np.empty(columns)
        for start in range(0, columns, COLUMN_BLOCK):
            block = np.ascontiguousarray(reference[:, start : start + COLUMN_BLOCK])
            # pyod's skew: scipy's, with the NaN of a constant column read as 0
            signs = np.sign(np.nan_to_num(skew(block, axis=0)))
            self.skew_signs[start : start + block.shape[1]] = signs
            self.sorted_columns[start : start + block.shape[1]] = np.sort(block.T, axis=1)
        # -log of the tail probability for each count of reference values on that side:
        # in place, pyod's ECDF values (np.linspace(1/n, 1, n), so ties share the last one's value);
        # for a new row, (count + 1) / (n + 1).
        self._in_place = np.concatenate([[np.inf], -np.log(np.linspace(1 / rows, 1, rows))])
        self._joined = joined_tail(rows)
        self.reference_scores = self._scores(reference, self._in_place)
        self.threshold = float(np.percentile(self.reference_scores, 100 * (1 - contamination)))

    @classmethod
    def restored(
        cls, sorted_columns: np.ndarray, skew_signs: np.ndarray, threshold: float
    ) -> ECODReference:
        """The reference as saved: its sorted columns, their skewness signs and the threshold."""
        reference = cls.__new__(cls)
        reference.sorted_columns, reference.skew_signs = sorted_columns, skew_signs
        reference.rows = sorted_columns.shape[1]
        reference._joined = joined_tail(reference.rows)
        reference.threshold = threshold
        return reference

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """The ECOD score of each row of ``vectors`` as if it alone joined the reference."""
        return self._scores(vectors, self._joined)

    def flags(self, scores: np.ndarray) -> np.ndarray:
        """1 for an outlier (a score above the threshold), as pyod's ``labels_``."""
        return (scores > self.threshold).astype(np.int8)

    def _scores(self, vectors: np.ndarray, neg_log_tail: np.ndarray) -> np.ndarray:
        if vectors.ndim != 2 or vectors.shape[1] != len(self.sorted_columns):
            raise ValueError(
                f"expected rows of {len(self.sorted_columns)} columns, got shape {vectors.shape}"
            )
        scores = np.empty(len(vectors))
        for start in range(0, len(vectors), BLOCK_ROWS):
            block = np.asarray(vectors[start : start + BLOCK_ROWS])
            scores[start : start + len(block)] = self._block_scores(block, neg_log_tail)
        return scores

    def _block_scores(self, block: np.ndarray, neg_log_tail: np.ndarray) -> np.ndarray:
        columns = np.ascontiguousarray(block.T)
        # Sorted keys make the binary searches walk the reference in order (~3x faster than
        # random keys); the counts go back to the rows through the sorting permutation.
        order = np.argsort(columns, axis=1)
        keys = np.take_along_axis(columns, order, axis=1)
        left, right = np.empty(columns.shape), np.empty(columns.shape)
        for column, (ordered, values, rows) in enumerate(zip(self.sorted_columns, keys, order)):
            below = np.searchsorted(ordered, values, side="left")
            at_most = below.copy()
            # Only a key equal to a reference value needs a second search to count its ties.
            ties = np.flatnonzero(ordered[np.minimum(below, self.rows - 1)] == values)
            at_most[ties] = np.searchsorted(ordered, values[ties], side="right")
            left[column, rows] = neg_log_tail[at_most]
            right[column, rows] = neg_log_tail[self.rows - below]
        u_left, u_right = left.T, right.T
        # pyod's combination, written as pyod writes it so that the floats are the same
        u_skew = u_left * -1 * np.sign(self.skew_signs - 1) + u_right * np.sign(self.skew_signs + 1)
        combined = np.maximum(np.maximum(u_left, u_right), u_skew)
        return np.ascontiguousarray(combined).sum(axis=1)


def joined_tail(rows: int) -> np.ndarray:
    """-log of a new row's tail probability, (count + 1) / (n + 1), for each count 0..n."""
    return -np.log(np.arange(1, rows + 2) / (rows + 1))
