"""k-NN models: the registry of trained models (:mod:`.registry`) and model training (:mod:`.training`).

See vector-semantics.md §5. IVF graphs built from a model live in ``segstore_codecs.segstore1.ivf_graph``.
"""
