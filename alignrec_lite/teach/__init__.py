"""The notebooks' small teaching models, each sized to train in seconds on a laptop CPU.

* :mod:`.similarity`: dot product vs cosine, nearest neighbours, popularity bias (notebook 01);
* :mod:`.text_embed`: static word vectors from PPMI + SVD of title co-occurrences (notebook 01);
* :mod:`.pair_data`: image-title pairs drawn fresh from the toy shop's generator (notebooks 01-03);
* :mod:`.contrastive`: a tiny CLIP (two MLP towers), its losses, training, retrieval and sweeps
  (notebooks 02-04);
* :mod:`.classifier`: a cross-entropy classifier whose hidden layer is used as an embedding (notebook 01);
* :mod:`.memory`: the memory of a contrastive step, measured and extrapolated (notebook 02).

Import the modules by name (``from alignrec_lite.teach import contrastive, pair_data``); the real
encoders live in :mod:`alignrec_lite.encoders`, :mod:`alignrec_lite.ica` and :mod:`alignrec_lite.multiway`.
"""
