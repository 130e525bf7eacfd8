"""Seg-then-count: class-agnostic counting that counts only what your exemplars show (a notebook-first reproduction of 'Learning to Count from Pseudo-Labeled Segmentation')

Modules:

- `segcount.app`: Draw a few boxes around one kind of object and count only that kind: the Gradio app behind `segcount demo` and the Hugging Face Space.
- `segcount.backbones`: Frozen ImageNet feature extractors at stride 16: ResNet-50 (the paper's), MobileNetV2 and EfficientNet-Lite0 (both ship offline).
- `segcount.batch`: The same exemplars over many photos: cut them once, count every photo, one CSV row each; resumable, and a bad file costs only its own row.
- `segcount.cli`: One console script for everything: count, evaluate, make the synthetic benchmark, generate training data, train, benchmark.
- `segcount.core`: The paper's constants, the one error type, and the few small helpers that every other module shares.
- `segcount.counter`: Image features, an exemplar vector, their similarity map (Eq. 1), masking (Eq. 4), and a density regressor whose sum is the count (Eq. 2–3).
- `segcount.course`: One flag per chapter: minutes on a laptop CPU with generated scenes, or the paper's setting with FSC-147 on a GPU.
- `segcount.data`: Images, exemplar boxes, dots and density maps: reading FSC-147 and groups files, resizing to the counter's height, cropping exemplars, and batching.
- `segcount.evaluate`: Run a predictor over a dataset and score it with the paper's metrics; measure speed and memory.
- `segcount.metrics`: The paper's counting errors: the per-image error (with the synthetic benchmark's region rule) and MAE, RMSE, NAE, SRE.
- `segcount.model_files`: How a model is saved, checked and loaded: safetensors weight files for shipping, checkpoints for training. The counter and the segmenter both use these.
- `segcount.pipeline`: One public entry point, `Predictor`: an image and exemplar boxes in; count, density map, similarity map and mask out.
- `segcount.points`: A density map says how many; people also want to see *which*. Turn a density map into as many points as it counts.
- `segcount.pseudolabel`: Patch embeddings, K-means for K = 2..8 (the paper: 2..6), and the counter picks the mask (paper §3.2, Eq. 4–5); fast and exact embeddings, the paper's alternative pseudo labels, and a whole-split runner.
- `segcount.segmenter`: The segmentation model P of §3.3: cosine similarity between the exemplars' pooled feature and every location (Eq. 6), trained by L2 to the K-means pseudo masks (Eq. 7).
- `segcount.synthetic`: The paper's two-class concatenation benchmark (§4.1), and a procedural + self-collage scene generator that writes FSC-147-layout training data with exact dots and exemplar boxes, dense scenes included.
- `segcount.tiles`: A photo too large to count in one pass at the scale its exemplars need is counted in overlapping tiles, and the tiles' density maps are stitched so that nothing is counted twice.
- `segcount.training`: Resumable AdamW training of the base counter (Eq. 3) with cached backbone features, random masks that teach Eq. 4's δ, and safetensors export.
- `segcount.training_loop`: One loop for both models: seeded epochs, an optimizer step per batch, a time limit that saves before it stops, and the checkpoints a run resumes from."""

__version__ = "0.1.0"
