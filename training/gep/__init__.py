"""GEP stage 2 (generative event pretraining): precompute the aligned encoders' tokens, train a
causal transformer by next-token regression over interleaved event/frame sequences, evaluate
next-window prediction against copy-last on held-out recordings, write docs/gep.{md,json}.

``event-fm train gep tokens|fit|evaluate|report --config training/configs/gep.yaml``.
"""
