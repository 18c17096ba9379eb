"""Sentence embeddings of the customers' texts: encoders, the Ray engine and resumable chunks."""
