"""DVC pipeline stages: one thin file per stage that reads its inputs, calls the ``segmentation``
package and writes its outputs; ``assign`` and ``draft`` are the two commands."""
