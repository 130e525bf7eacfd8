"""Seg-then-count: class-agnostic counting that counts only what your exemplars show (a notebook-first reproduction of 'Learning to Count from Pseudo-Labeled Segmentation')

Modules:

- `segcount.synthetic`: The paper's two-class concatenation benchmark (§4.1), and a procedural + self-collage scene generator that writes FSC-147-layout training data with exact dots and exemplar boxes, dense scenes included."""

__version__ = "0.1.0"
